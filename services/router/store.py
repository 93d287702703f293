"""The router's tables behind one interface, :class:`RouterStore`: the directory,
flows, absences, documents under way (instances) and their requests, and the
messages sent with each change. :class:`PostgresRouterStore` keeps them in
the router's schema, inside the caller's transaction; tests use an in-memory
fake of the same interface (tests/support/fakes.py)."""

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol
from uuid import UUID, uuid4

import asyncpg
from pydantic import BaseModel

from services.router.domain import Absence, Directory, FlowDefinition, Group, Instance, Person, Request, Role
from shared.clock import Clock
from shared.clock import now as services_now
from shared.db import canonical_json
from shared.events import PersonRef, SignatureRecord, StepSpec
from shared.outbox import Outbox, TransactionStore

__all__ = ["ABSENCES_CHANNEL", "PostgresRouterStore", "RouterStore", "StoredAbsence", "person_ref"]

ABSENCES_CHANNEL = "router_absences"  # NOTIFY wakes the router's absence scheduler


def person_ref(person: Person, title: str = "") -> PersonRef:
    return PersonRef(id=person.id, name=person.name, email=person.email, language=person.language, title=title)


@dataclass(frozen=True)
class StoredAbsence:
    id: UUID
    org: str
    absence: Absence
    source: str = "api"
    note: str = ""
    applied_at: datetime | None = None


class RouterStore(Protocol):
    async def publish(self, message: BaseModel) -> None: ...

    # The directory and the flows.
    async def directory_version(self, org: str) -> int: ...
    async def load_directory(self, org: str, *, absences_from: Sequence[str] = ("import", "api")) -> Directory: ...
    async def replace_directory(self, org: str, directory: Directory) -> None: ...
    async def has_person(self, org: str, person_id: str) -> bool: ...
    async def flow(self, org: str, key: str) -> FlowDefinition | None: ...
    async def save_flow(self, org: str, flow: FlowDefinition) -> None: ...
    async def flows(self, org: str) -> list[FlowDefinition]: ...

    # Absences.
    async def add_absence(self, org: str, absence: Absence, *, source: str, note: str = "") -> UUID: ...
    async def remove_absence(self, org: str, absence_id: UUID) -> bool: ...
    async def absences(self, org: str, person_id: str | None = None) -> list[StoredAbsence]: ...
    async def unapplied_absences(self, started_by: datetime) -> list[StoredAbsence]: ...
    async def mark_applied(self, absence_id: UUID, at: datetime) -> None: ...
    async def next_absence_start(self, after: datetime) -> datetime | None: ...

    # Documents under way and their requests.
    async def insert_instance(self, instance: Instance) -> None: ...
    async def instance(self, document_id: UUID) -> Instance | None: ...
    async def update_instance(self, document_id: UUID, **fields: Any) -> None: ...
    async def record_signature(
        self, document_id: UUID, signature: SignatureRecord, pdf_sha256: str, revision: int, *,
        signed: UUID | None = None, status: str | None = None, opens: tuple[int, Sequence[Request]] | None = None,
    ) -> None: ...
    async def running_ad_hoc_steps(self, org: str) -> list[tuple[UUID, tuple[StepSpec, ...]]]: ...
    async def insert_request(self, request: Request) -> None: ...
    async def open_step(self, document_id: UUID, step: int, requests: Sequence[Request], *, new: Instance | None = None) -> None: ...
    async def start_document(self, instance: Instance, requests: Sequence[Request], *, directory_version: int) -> bool: ...
    async def request(self, request_id: UUID, *, lock: bool = True) -> Request | None: ...
    async def step_requests(self, document_id: UUID, step: int) -> list[Request]: ...
    async def step_of(self, request_id: UUID, document_id: UUID) -> tuple[Request | None, list[Request]]: ...
    async def pending_requests(self, document_id: UUID) -> list[Request]: ...
    async def pending_of(self, org: str, person_id: str) -> list[Request]: ...
    async def people_waiting(self, org: str) -> set[str]: ...
    async def set_request_status(self, request_ids: Sequence[UUID], status: str) -> None: ...


def _instance(row: asyncpg.Record) -> Instance:
    return Instance(
        document_id=row["document_id"],
        org=row["org"],
        title=row["title"],
        filename=row["filename"],
        submitted_by=PersonRef.model_validate(row["submitted_by"]),
        confidential=row["confidential"],
        steps=tuple(StepSpec.model_validate(s) for s in row["steps"]),
        pdf_sha256=row["pdf_sha256"],
        flow_key=row["flow_key"],
        department=row["department"],
        group=row["group_key"],
        current_step=row["current_step"],
        status=row["status"],
        revision=row["revision"],
        signatures=tuple(SignatureRecord.model_validate(s) for s in row["signatures"]),
        due_at=row["due_at"],
    )


def _request(row: asyncpg.Record) -> Request:
    return Request(
        request_id=row["request_id"],
        document_id=row["document_id"],
        org=row["org"],
        step=row["step"],
        entry=row["entry"],
        person=PersonRef.model_validate(row["person"]),
        action=row["action"],
        on_behalf_of=PersonRef.model_validate(row["on_behalf_of"]) if row["on_behalf_of"] else None,
        reason=row["reason"],
        status=row["status"],
        replaces=row["replaces"],
    )


def _flow(row: asyncpg.Record) -> FlowDefinition:
    return FlowDefinition(
        key=row["key"],
        title=row["title"],
        department=row["department"],
        group=row["group_key"],
        confidential=row["confidential"],
        steps=tuple(StepSpec.model_validate(s) for s in row["steps"]),
    )


def _absence(row: asyncpg.Record) -> StoredAbsence:
    return StoredAbsence(
        id=row["id"],
        org=row["org"],
        absence=Absence(row["person_id"], row["starts_at"], row["ends_at"]),
        source=row["source"],
        note=row["note"],
        applied_at=row["applied_at"],
    )


class PostgresRouterStore(TransactionStore):
    """The router's schema, through the connection of the transaction a message or a command runs in.

    Rows are stamped with the services' clock (shared.clock), not the database's now(): the time the router
    decided is the time its events say, also when a demo or a test moved the clock."""

    def __init__(self, conn: asyncpg.Connection, outbox: Outbox, *, clock: Clock = services_now) -> None:
        super().__init__(conn, outbox)
        self._clock = clock
        # Directory versions by org as read along with a document or a flow in this transaction: the version is what
        # DirectoryCache asks before every use, and a statement of its own would be one more round trip a message.
        self._versions: dict[str, int] = {}

    # The directory and the flows.

    async def directory_version(self, org: str) -> int:
        if org not in self._versions:
            self._versions[org] = await self._conn.fetchval("SELECT version FROM router.directory_version WHERE org = $1", org) or 0
        return self._versions[org]

    def _saw_version(self, org: str, row: asyncpg.Record) -> None:
        self._versions[org] = row["directory_version"] or 0

    async def load_directory(self, org: str, *, absences_from: Sequence[str] = ("import", "api")) -> Directory:
        conn = self._conn
        people = await conn.fetch(
            "SELECT id, name, email, department, language, manager, mails FROM router.people WHERE org = $1", org
        )
        roles = await conn.fetch("SELECT key, title, holders FROM router.roles WHERE org = $1", org)
        substitutes = await conn.fetch("SELECT person_id, substitutes FROM router.substitutes WHERE org = $1", org)
        absences = await conn.fetch(
            "SELECT person_id, starts_at, ends_at FROM router.absences WHERE org = $1 AND source = ANY($2::text[])"
            " ORDER BY starts_at",
            org,
            list(absences_from),
        )
        groups = await conn.fetch("SELECT key, departments, shielded FROM router.groups WHERE org = $1", org)
        by_person: dict[str, list[Absence]] = {}
        for row in absences:
            by_person.setdefault(row["person_id"], []).append(Absence(row["person_id"], row["starts_at"], row["ends_at"]))
        return Directory(
            people={r["id"]: Person(**dict(r)) for r in people},
            roles={r["key"]: Role(key=r["key"], title=r["title"], holders=tuple(r["holders"])) for r in roles},
            substitutes={r["person_id"]: tuple(r["substitutes"]) for r in substitutes},
            absences={person_id: tuple(items) for person_id, items in by_person.items()},
            groups={r["key"]: Group(key=r["key"], departments=tuple(r["departments"]), shielded=r["shielded"]) for r in groups},
        )

    async def has_person(self, org: str, person_id: str) -> bool:
        return bool(await self._conn.fetchval("SELECT true FROM router.people WHERE org = $1 AND id = $2", org, person_id))

    async def replace_directory(self, org: str, directory: Directory) -> None:
        """People, roles, substitutes and groups become ``directory``'s; imported absences follow it
        (unchanged ones keep their rows, so an applied absence is not applied twice); API absences stay."""
        conn = self._conn
        for table in ("roles", "people", "substitutes", "groups"):
            await conn.execute(f"DELETE FROM router.{table} WHERE org = $1", org)
        tables = {
            "people": (
                ["org", "id", "name", "email", "department", "language", "manager", "mails"],
                [(org, *asdict(p).values()) for p in directory.people.values()],
            ),
            "roles": (
                ["org", "key", "title", "holders"],
                [(org, r.key, r.title, list(r.holders)) for r in directory.roles.values()],
            ),
            "substitutes": (
                ["org", "person_id", "substitutes"],
                [(org, p, list(row)) for p, row in directory.substitutes.items()],
            ),
            "groups": (
                ["org", "key", "departments", "shielded"],
                [(org, g.key, list(g.departments), g.shielded) for g in directory.groups.values()],
            ),
        }
        for table, (columns, records) in tables.items():
            await conn.copy_records_to_table(table, schema_name="router", columns=columns, records=records)
        await self._replace_imported_absences(org, directory)
        await self._bump(org)

    async def _replace_imported_absences(self, org: str, directory: Directory) -> None:
        before = {
            (a.person_id, a.starts_at, a.ends_at) for a in _all_absences(await self.load_directory(org, absences_from=["import"]))
        }
        after = {(a.person_id, a.starts_at, a.ends_at) for a in _all_absences(directory)}
        for person_id, starts_at, ends_at in before - after:
            await self._conn.execute(
                "DELETE FROM router.absences WHERE org = $1 AND source = 'import' AND person_id = $2 AND starts_at = $3 AND ends_at = $4",
                org,
                person_id,
                starts_at,
                ends_at,
            )
        for person_id, starts_at, ends_at in after - before:
            await self._conn.execute(
                "INSERT INTO router.absences (id, org, person_id, starts_at, ends_at, source) VALUES ($1, $2, $3, $4, $5, 'import')",
                uuid4(),
                org,
                person_id,
                starts_at,
                ends_at,
            )

    async def _bump(self, org: str) -> None:
        self._versions.pop(org, None)
        await self._conn.execute(
            "INSERT INTO router.directory_version (org, version) VALUES ($1, 1)"
            " ON CONFLICT (org) DO UPDATE SET version = router.directory_version.version + 1",
            org,
        )
        await self._conn.execute(f"NOTIFY {ABSENCES_CHANNEL}")

    async def flow(self, org: str, key: str) -> FlowDefinition | None:
        """The flow (None when ``org`` has none of that key), with the directory's version."""
        row = await self._conn.fetchrow(
            f"SELECT {_VERSION.format(org='$1')}, f.key, f.title, f.department, f.group_key, f.confidential, f.steps"
            " FROM (SELECT 1) AS one LEFT JOIN router.flows f ON f.org = $1 AND f.key = $2",
            org,
            key,
        )
        self._saw_version(org, row)
        return _flow(row) if row["key"] is not None else None

    async def flows(self, org: str) -> list[FlowDefinition]:
        rows = await self._conn.fetch(
            "SELECT key, title, department, group_key, confidential, steps FROM router.flows WHERE org = $1 ORDER BY key", org
        )
        return [_flow(r) for r in rows]

    async def save_flow(self, org: str, flow: FlowDefinition) -> None:
        await self._conn.execute(
            "INSERT INTO router.flows (org, key, title, department, group_key, confidential, steps)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (org, key) DO UPDATE SET title = $3,"
            " department = $4, group_key = $5, confidential = $6, steps = $7, updated_at = now()",
            org,
            flow.key,
            flow.title,
            flow.department,
            flow.group,
            flow.confidential,
            [s.model_dump() for s in flow.steps],
        )

    # Absences.

    async def add_absence(self, org: str, absence: Absence, *, source: str, note: str = "") -> UUID:
        absence_id = uuid4()
        await self._conn.execute(
            "INSERT INTO router.absences (id, org, person_id, starts_at, ends_at, source, note) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            absence_id,
            org,
            absence.person_id,
            absence.starts_at,
            absence.ends_at,
            source,
            note,
        )
        await self._bump(org)
        return absence_id

    async def remove_absence(self, org: str, absence_id: UUID) -> bool:
        removed = await self._conn.fetchval(
            "DELETE FROM router.absences WHERE org = $1 AND id = $2 RETURNING true", org, absence_id
        )
        if removed:
            await self._bump(org)
        return bool(removed)

    async def absences(self, org: str, person_id: str | None = None) -> list[StoredAbsence]:
        rows = await self._conn.fetch(
            "SELECT * FROM router.absences WHERE org = $1 AND ($2::text IS NULL OR person_id = $2) ORDER BY starts_at",
            org,
            person_id,
        )
        return [_absence(r) for r in rows]

    async def unapplied_absences(self, started_by: datetime) -> list[StoredAbsence]:
        """Absences that began by ``started_by`` and were not applied yet, locked (replicas skip each other's)."""
        rows = await self._conn.fetch(
            "SELECT * FROM router.absences WHERE applied_at IS NULL AND starts_at <= $1 ORDER BY starts_at FOR UPDATE SKIP LOCKED",
            started_by,
        )
        return [_absence(r) for r in rows]

    async def mark_applied(self, absence_id: UUID, at: datetime) -> None:
        await self._conn.execute("UPDATE router.absences SET applied_at = $2 WHERE id = $1", absence_id, at)

    async def next_absence_start(self, after: datetime) -> datetime | None:
        return await self._conn.fetchval(
            "SELECT min(starts_at) FROM router.absences WHERE applied_at IS NULL AND starts_at > $1", after
        )

    # Documents under way and their requests.

    async def insert_instance(self, instance: Instance) -> None:
        await self._conn.execute(
            "INSERT INTO router.instances (document_id, org, flow_key, title, filename, submitted_by, confidential,"
            " department, group_key, steps, pdf_sha256, due_at, created_at, updated_at)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13)",
            instance.document_id,
            instance.org,
            instance.flow_key,
            instance.title,
            instance.filename,
            instance.submitted_by.model_dump(),
            instance.confidential,
            instance.department,
            instance.group,
            [s.model_dump() for s in instance.steps],
            instance.pdf_sha256,
            instance.due_at,
            self._clock(),
        )

    async def instance(self, document_id: UUID) -> Instance | None:
        """The document, locked for the rest of the transaction (read with its org's directory version)."""
        row = await self._conn.fetchrow(
            f"SELECT i.*, {_VERSION.format(org='i.org')} FROM router.instances i WHERE document_id = $1 FOR UPDATE OF i", document_id
        )
        if row is None:
            return None
        self._saw_version(row["org"], row)
        return _instance(row)

    async def update_instance(self, document_id: UUID, **fields: Any) -> None:
        columns = ", ".join(f"{name} = ${i}" for i, name in enumerate(fields, start=2))
        await self._conn.execute(
            f"UPDATE router.instances SET {columns}, updated_at = ${len(fields) + 2} WHERE document_id = $1",
            document_id,
            *fields.values(),
            self._clock(),
        )

    async def record_signature(
        self, document_id: UUID, signature: SignatureRecord, pdf_sha256: str, revision: int, *,
        signed: UUID | None = None, status: str | None = None, opens: tuple[int, Sequence[Request]] | None = None,
    ) -> None:
        """Append the signature; the PDF moves only forward (signatures may be reported out of order). With
        ``signed``, that request becomes signed, with ``status`` the document moves to it, and with ``opens`` (a step,
        its requests) the document moves to that step and its requests open (as :meth:`open_step`), in the same
        statement. The document as it is now is ``domain.with_signature`` of the one the caller read and locked."""
        record = [signature.model_dump(mode="json")]
        if opens is None:
            await self._conn.execute(_RECORD, document_id, record, pdf_sha256, revision, self._clock(), signed, status)
            return
        step, requests = opens
        await self._conn.execute(
            _RECORD_AND_OPEN, document_id, step, *self._opened(requests), record, signed, pdf_sha256, revision, status
        )

    async def running_ad_hoc_steps(self, org: str) -> list[tuple[UUID, tuple[StepSpec, ...]]]:
        rows = await self._conn.fetch(
            "SELECT document_id, steps FROM router.instances WHERE org = $1 AND status = 'active' AND flow_key IS NULL", org
        )
        return [(r["document_id"], tuple(StepSpec.model_validate(s) for s in r["steps"])) for r in rows]

    async def insert_request(self, request: Request) -> None:
        await self._conn.execute(
            "INSERT INTO router.requests (request_id, document_id, org, step, entry, person_id, person, on_behalf_of,"
            " reason, action, replaces, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            request.request_id,
            request.document_id,
            request.org,
            request.step,
            request.entry,
            request.person.id,
            request.person.model_dump(),
            request.on_behalf_of.model_dump() if request.on_behalf_of else None,
            request.reason,
            request.action,
            request.replaces,
            self._clock(),
        )

    async def open_step(self, document_id: UUID, step: int, requests: Sequence[Request], *, new: Instance | None = None) -> None:
        """The document moves to ``step`` (``new``: is inserted, at ``step``) and its ``requests`` open, in one
        statement; their created_at a microsecond apart, in the order given (the order a step's requests are read back in)."""
        opened = self._opened(requests)
        if new is None:
            await self._conn.execute(_OPEN_STEP, document_id, step, *opened)
            return
        await self._conn.execute(
            _OPEN_FIRST_STEP, document_id, step, *opened, new.org, new.flow_key, new.title, new.filename,
            new.submitted_by.model_dump(), new.confidential, new.department, new.group, [s.model_dump() for s in new.steps],
            new.pdf_sha256, new.due_at,
        )

    async def start_document(self, instance: Instance, requests: Sequence[Request], *, directory_version: int) -> bool:
        """As ``open_step(instance.document_id, 1, requests, new=instance)``, only while the org's directory is at
        ``directory_version`` (the one the requests were planned with), in one statement that reads the version too:
        False, with nothing written, when the directory moved on (:meth:`directory_version` then gives the new one)."""
        new = instance
        version = await self._conn.fetchval(
            _START_IF_VERSION, new.document_id, 1, *self._opened(requests), new.org, new.flow_key, new.title, new.filename,
            new.submitted_by.model_dump(), new.confidential, new.department, new.group, [s.model_dump() for s in new.steps],
            new.pdf_sha256, new.due_at, directory_version,
        )
        self._versions[new.org] = version
        return version == directory_version

    def _opened(self, requests: Sequence[Request]) -> tuple[Any, ...]:
        """$3 to $13 of :data:`_OPENED`: now, and the requests' columns, their created_at a microsecond apart."""
        at = self._clock()
        columns = zip(*(_request_columns(r) for r in requests), strict=True) if requests else [()] * 9
        return at, *map(list, columns), [at + timedelta(microseconds=i) for i in range(len(requests))]

    async def request(self, request_id: UUID, *, lock: bool = True) -> Request | None:
        """The request, locked for the rest of the transaction (``lock``: lock its document first)."""
        sql = "SELECT * FROM router.requests WHERE request_id = $1" + (" FOR UPDATE" if lock else "")
        row = await self._conn.fetchrow(sql, request_id)
        return _request(row) if row else None

    async def step_requests(self, document_id: UUID, step: int) -> list[Request]:
        rows = await self._conn.fetch(
            "SELECT * FROM router.requests WHERE document_id = $1 AND step = $2 ORDER BY created_at", document_id, step
        )
        return [_request(r) for r in rows]

    async def step_of(self, request_id: UUID, document_id: UUID) -> tuple[Request | None, list[Request]]:
        """The request of ``document_id``, locked for the rest of the transaction (lock its document first), and every
        request of its step (itself too) in the order they were made, with one statement; (None, []) when none.
        The step is read after the document's lock was taken, which whoever changes its requests takes first."""
        rows = [_request(r) for r in await self._conn.fetch(_STEP_OF, request_id, document_id)]
        return next((r for r in rows if r.request_id == request_id), None), rows

    async def pending_requests(self, document_id: UUID) -> list[Request]:
        rows = await self._conn.fetch(
            "SELECT * FROM router.requests WHERE document_id = $1 AND status = 'pending' ORDER BY created_at", document_id
        )
        return [_request(r) for r in rows]

    async def pending_of(self, org: str, person_id: str) -> list[Request]:
        """A person's open requests in documents still running, not locked: whoever changes one locks its document
        first, then the request, in the order every handler does."""
        rows = await self._conn.fetch(
            "SELECT r.* FROM router.requests r JOIN router.instances i USING (document_id)"
            " WHERE r.org = $1 AND r.person_id = $2 AND r.status = 'pending' AND i.status = 'active'"
            " ORDER BY r.created_at",
            org,
            person_id,
        )
        return [_request(r) for r in rows]

    async def people_waiting(self, org: str) -> set[str]:
        rows = await self._conn.fetch("SELECT DISTINCT person_id FROM router.requests WHERE org = $1 AND status = 'pending'", org)
        return {r["person_id"] for r in rows}

    async def set_request_status(self, request_ids: Sequence[UUID], status: str) -> None:
        await self._conn.execute(
            "UPDATE router.requests SET status = $2, decided_at = $3 WHERE request_id = ANY($1::uuid[])",
            list(request_ids),
            status,
            self._clock(),
        )


_VERSION = "(SELECT version FROM router.directory_version v WHERE v.org = {org}) AS directory_version"

_STEP_OF = (
    "WITH mine AS (SELECT step FROM router.requests WHERE request_id = $1 AND document_id = $2 FOR UPDATE)"
    " SELECT r.* FROM router.requests r JOIN mine USING (step) WHERE r.document_id = $2 ORDER BY r.created_at"
)

_OPENED = (
    " INSERT INTO router.requests (request_id, document_id, org, step, entry, person_id, person, on_behalf_of,"
    " reason, action, replaces, created_at)"
    " SELECT id, $1, org, $2, entry, person_id, person::jsonb, on_behalf_of::jsonb, reason, action, replaces, created_at"
    " FROM unnest($4::uuid[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[],"
    " $12::uuid[], $13::timestamptz[]) AS r(id, org, entry, person_id, person, on_behalf_of, reason, action, replaces, created_at)"
)
# A signature: its request signed, the document's signatures and PDF moved on (the PDF only forward).
_SIGNED = "signed AS (UPDATE router.requests SET status = 'signed', decided_at = {at} WHERE request_id = {request})"
_RECORDED = (
    " signatures = signatures || {record}::jsonb, pdf_sha256 = CASE WHEN {revision} > revision THEN {pdf} ELSE pdf_sha256 END,"
    " revision = greatest(revision, {revision}), status = coalesce({status}, status), updated_at = {at}"
)
_RECORD = (
    "WITH " + _SIGNED.format(at="$5", request="$6")
    + " UPDATE router.instances SET" + _RECORDED.format(record="$2", revision="$4", pdf="$3", status="$7", at="$5")
    + " WHERE document_id = $1"
)
_RECORD_AND_OPEN = (
    "WITH " + _SIGNED.format(at="$3", request="$15") + ", moved AS (UPDATE router.instances SET current_step = $2,"
    + _RECORDED.format(record="$14", revision="$17", pdf="$16", status="$18", at="$3") + " WHERE document_id = $1)"
    + _OPENED
)
_OPEN_STEP = "WITH moved AS (UPDATE router.instances SET current_step = $2, updated_at = $3 WHERE document_id = $1)" + _OPENED
_OPEN_FIRST_STEP = (
    "WITH made AS (INSERT INTO router.instances (document_id, current_step, created_at, updated_at, org, flow_key, title,"
    " filename, submitted_by, confidential, department, group_key, steps, pdf_sha256, due_at)"
    " VALUES ($1, $2, $3, $3, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24))" + _OPENED
)

# As _OPEN_FIRST_STEP, but only while the org's directory is at version $25; gives the version it is at.
_START_IF_VERSION = (
    "WITH v AS (SELECT coalesce((SELECT version FROM router.directory_version WHERE org = $14), 0) AS version),"
    " made AS (INSERT INTO router.instances (document_id, current_step, created_at, updated_at, org, flow_key, title,"
    " filename, submitted_by, confidential, department, group_key, steps, pdf_sha256, due_at)"
    " SELECT $1, $2, $3, $3, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24 FROM v WHERE v.version = $25),"
    " opened AS (" + _OPENED.strip() + " WHERE (SELECT version FROM v) = $25)"
    " SELECT version FROM v"
)


def _request_columns(r: Request) -> tuple[Any, ...]:
    on_behalf_of = canonical_json(r.on_behalf_of.model_dump()) if r.on_behalf_of else None
    return (
        r.request_id,
        r.org,
        r.entry,
        r.person.id,
        canonical_json(r.person.model_dump()),
        on_behalf_of,
        r.reason,
        r.action,
        r.replaces,
    )


def _all_absences(directory: Directory) -> list[Absence]:
    return [a for items in directory.absences.values() for a in items]
