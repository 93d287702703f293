"""The portal's view of people and documents: who is signed in (her groups and
roles, from the router's directory) and the documents she may see (from the
router's instances and requests), each passed through the one visibility
policy (shared/visibility.py) before anything of it is shown.

The router owns documents and the directory; the portal reads them (read-only
grants, services/admin/database.py) and changes them only through messages.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal
from uuid import UUID

import asyncpg

from services.signer.domain import PolicyFacts
from shared import blobs
from shared.events import PersonRef
from shared.visibility import ADMIN_ROLE, OPERATOR_ROLE, Access, DocumentFacts, Viewer, access

__all__ = [
    "LINK_POLICY_COLUMNS", "LINK_POLICY_JOINS", "Absence", "Person", "PortalDocument", "PortalReader", "Step", "ToSign", "Upload",
    "link_policy",
]

LIST_LIMIT = 200
_MAX_BATCHES = 10  # a list reads at most this many times LIST_LIMIT rows

ListName = Literal["submitted", "signed", "department", "search"]


@dataclass(frozen=True)
class Person:
    """A person as the portal knows her: from the directory, with her groups and the roles she holds."""

    org: str
    id: str
    name: str
    email: str
    department: str
    language: str
    groups: frozenset[str]
    roles: frozenset[str]
    reports: frozenset[str] = frozenset()  # the people whose manager she is

    @property
    def viewer(self) -> Viewer:
        return Viewer(self.org, self.id, self.groups, operator=OPERATOR_ROLE in self.roles)

    @property
    def admin(self) -> bool:
        return ADMIN_ROLE in self.roles

    @property
    def operator(self) -> bool:
        return OPERATOR_ROLE in self.roles

    def may_register_absence_of(self, person_id: str) -> bool:
        """Her own, her reports' (she is their manager), or anyone's when she is an admin."""
        return person_id == self.id or person_id in self.reports or self.admin


@dataclass(frozen=True)
class Step:
    """One request of a document's trail: who was asked, for whom, and what became of it."""

    request_id: UUID
    step: int
    action: str
    person: PersonRef
    on_behalf_of: PersonRef | None
    status: str
    reason: str | None
    asked_at: datetime
    decided_at: datetime | None


@dataclass(frozen=True)
class PortalDocument:
    """A document with what the policy needs (``facts``) and what the pages show."""

    facts: DocumentFacts
    document_id: UUID
    title: str
    filename: str
    submitted_by: PersonRef
    status: str
    current_step: int
    step_count: int
    flow: str | None
    created_at: datetime
    updated_at: datetime
    waiting_on: tuple[str, ...] = ()  # the names of those asked now

    def seen_by(self, person: Person) -> Access:
        return access(person.viewer, self.facts)


@dataclass(frozen=True)
class ToSign:
    """A request waiting for the signed-in person."""

    request_id: UUID
    document_id: UUID
    title: str
    action: str
    step: int
    step_count: int
    submitted_by: PersonRef
    on_behalf_of: PersonRef | None
    asked_at: datetime
    confidential: bool
    flow: str | None = None  # the flow's title; None for an ad-hoc one


@dataclass(frozen=True)
class Absence:
    person_id: str
    name: str
    starts_at: datetime
    ends_at: datetime
    note: str


@dataclass(frozen=True)
class Upload:
    """What a person sent through the portal and what intake or the router made of it."""

    form_id: UUID
    external_ref: str
    title: str
    created_at: datetime
    document_id: UUID | None  # once the router took it on
    refusal: str | None


_DOCUMENT = """
SELECT i.document_id, i.org, i.flow_key, i.title, i.filename, i.submitted_by, i.confidential, i.group_key,
       i.status, i.current_step, jsonb_array_length(i.steps) AS step_count, i.created_at, i.updated_at,
       coalesce(g.shielded, false) AS shielded,
       coalesce((SELECT array_agg(DISTINCT asked.person) FROM (
                   SELECT r.person_id AS person FROM router.requests r WHERE r.document_id = i.document_id
                   UNION SELECT s.signer->>'id' FROM signer.requests s WHERE s.document_id = i.document_id) asked),
                '{}') AS asked,  -- the router's requests, and those it sent the signer (the same people, whichever came first)
       coalesce((SELECT array_agg(r.person->>'name' ORDER BY r.created_at) FROM router.requests r
                  WHERE r.document_id = i.document_id AND r.status = 'pending'), '{}') AS waiting_on
  FROM router.instances i LEFT JOIN router.groups g ON g.org = i.org AND g.key = i.group_key
"""

_REPORTS = "coalesce((SELECT array_agg(q.id) FROM router.people q WHERE q.org = p.org AND q.manager = p.id), '{}')"
_PERSON_WITH = """
SELECT p.org, p.id, p.name, p.email, p.department, p.language,
       coalesce((SELECT array_agg(g.key) FROM router.groups g WHERE g.org = p.org AND p.department = ANY(g.departments)),
                '{{}}') AS groups,
       coalesce((SELECT array_agg(r.key) FROM router.roles r WHERE r.org = p.org AND p.id = ANY(r.holders)), '{{}}') AS roles,
       {reports} AS reports
  FROM router.people p
"""
_PERSON = _PERSON_WITH.format(reports=_REPORTS)

_PERSON_COLUMNS = ("org", "id", "name", "email", "department", "language", "groups", "roles", "reports")

# One row whatever is found: the person's columns prefixed (both have an ``org``), NULL where she or it is not.
# Her reports are not read: the policy does not weigh them, and finding them reads every person of the org
# (there is no index on manager).
_PERSON_AND_DOCUMENT = f"""
WITH p AS ({_PERSON_WITH.format(reports="'{}'::text[]")} WHERE p.org = $1 AND p.id = $2), d AS ({_DOCUMENT} WHERE i.org = $1 AND i.document_id = $3)
SELECT {", ".join(f"p.{c} AS person_{c}" for c in _PERSON_COLUMNS)}, d.*
  FROM (SELECT) one LEFT JOIN p ON true LEFT JOIN d ON true
"""

# What :meth:`PortalReader.person_and_document` reads for the policy, as joins and columns of the statement that finds
# a signing link (``r``: its request), so a signing page, picture or signature takes one round trip less. PostgreSQL
# leaves out the columns of these subqueries that are not selected (the document's ``waiting_on``).
LINK_POLICY_JOINS = f"""
 LEFT JOIN LATERAL ({_PERSON_WITH.format(reports="'{}'::text[]")} WHERE p.org = r.org AND p.id = r.signer->>'id') policy_p ON true
 LEFT JOIN LATERAL ({_DOCUMENT} WHERE i.org = r.org AND i.document_id = r.document_id) policy_d ON true
"""
LINK_POLICY_COLUMNS = (
    "policy_p.id AS policy_person_id, policy_p.org AS policy_person_org, policy_p.groups AS policy_groups,"
    " policy_p.roles AS policy_roles, policy_d.document_id AS policy_document_id, policy_d.org AS policy_document_org,"
    " policy_d.submitted_by AS policy_submitted_by, policy_d.asked AS policy_asked, policy_d.group_key AS policy_group_key,"
    " policy_d.confidential AS policy_confidential, policy_d.shielded AS policy_shielded"
)


def link_policy(row: asyncpg.Record) -> PolicyFacts:
    """The facts :data:`LINK_POLICY_COLUMNS` read: those of :meth:`PortalReader.person_and_document`'s person and
    document that the policy weighs (:attr:`Person.viewer`, :attr:`PortalDocument.facts`)."""
    viewer = None
    if row["policy_person_id"] is not None:
        viewer = Viewer(
            row["policy_person_org"], row["policy_person_id"], frozenset(row["policy_groups"]),
            operator=OPERATOR_ROLE in row["policy_roles"],
        )
    facts = None
    if row["policy_document_id"] is not None:
        facts = DocumentFacts(
            org=row["policy_document_org"], submitter=PersonRef.model_validate(row["policy_submitted_by"]).id,
            asked=frozenset(row["policy_asked"]), group=row["policy_group_key"], confidential=row["policy_confidential"],
            shielded=row["policy_shielded"],
        )
    return PolicyFacts(viewer, facts)


_LISTS: dict[str, str] = {
    "submitted": "i.submitted_by->>'id' = $2",
    "signed": "EXISTS (SELECT 1 FROM router.requests r WHERE r.document_id = i.document_id AND r.person_id = $2"
    " AND r.status = 'signed')",
    "department": "i.group_key = ANY($2::text[]) AND NOT i.confidential",
    "search": "i.title ILIKE '%' || $2 || '%'",
}


def _person_ref(stored: dict | None) -> PersonRef | None:
    return PersonRef.model_validate(stored) if stored else None


def _person(row: asyncpg.Record, prefix: str = "") -> Person:
    org, id_, name, email, department, language, groups, roles, reports = (row[prefix + c] for c in _PERSON_COLUMNS)
    return Person(org, id_, name, email, department, language, frozenset(groups), frozenset(roles), frozenset(reports))


def _document(row: asyncpg.Record) -> PortalDocument:
    submitted_by = PersonRef.model_validate(row["submitted_by"])
    facts = DocumentFacts(
        org=row["org"], submitter=submitted_by.id, asked=frozenset(row["asked"]), group=row["group_key"],
        confidential=row["confidential"], shielded=row["shielded"],
    )
    return PortalDocument(
        facts=facts, document_id=row["document_id"], title=row["title"], filename=row["filename"],
        submitted_by=submitted_by, status=row["status"], current_step=row["current_step"], step_count=row["step_count"],
        flow=row["flow_key"], created_at=row["created_at"], updated_at=row["updated_at"], waiting_on=tuple(row["waiting_on"]),
    )


def _escaped_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class PortalReader:
    """Read-only queries behind the portal's pages; every document list is filtered by the policy here."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def person(self, org: str, person_id: str) -> Person | None:
        row = await self._conn.fetchrow(_PERSON + " WHERE p.org = $1 AND p.id = $2", org, person_id)
        return _person(row) if row else None

    async def person_and_document(self, org: str, person_id: str, document_id: UUID) -> tuple[Person | None, PortalDocument | None]:
        """:meth:`person` (without her ``reports``) and :meth:`document` in one round trip: what the policy weighs
        for a signing link."""
        row = await self._conn.fetchrow(_PERSON_AND_DOCUMENT, org, person_id, document_id)
        return (
            _person(row, "person_") if row["person_id"] is not None else None,
            _document(row) if row["document_id"] is not None else None,
        )

    async def person_by_email(self, org: str, email: str) -> Person | None:
        """The directory person with this address (case does not matter), when exactly one has it."""
        rows = await self._conn.fetch(
            "SELECT id FROM router.people WHERE org = $1 AND lower(email) = lower($2) LIMIT 2", org, email.strip()
        )
        return await self.person(org, rows[0]["id"]) if len(rows) == 1 else None

    async def people(self, org: str) -> list[PersonRef]:
        rows = await self._conn.fetch("SELECT id, name, language FROM router.people WHERE org = $1 ORDER BY name", org)
        return [PersonRef(id=r["id"], name=r["name"], language=r["language"]) for r in rows]

    async def flows_for(self, person: Person) -> list[tuple[str, str, bool]]:
        """The flows of her departments: (key, title, confidential)."""
        rows = await self._conn.fetch(
            "SELECT key, title, confidential FROM router.flows WHERE org = $1 AND (department = $2 OR group_key = ANY($3::text[]))"
            " ORDER BY title",
            person.org, person.department, sorted(person.groups),
        )
        return [(r["key"], r["title"], r["confidential"]) for r in rows]

    async def document(self, org: str, document_id: UUID) -> PortalDocument | None:
        row = await self._conn.fetchrow(_DOCUMENT + " WHERE i.org = $1 AND i.document_id = $2", org, document_id)
        return _document(row) if row else None

    async def documents(self, person: Person, which: ListName, query: str = "") -> list[PortalDocument]:
        """One of the portal's lists, newest first, holding only what ``person`` may fully see."""
        argument: object = {
            "submitted": person.id, "signed": person.id, "department": sorted(person.groups), "search": _escaped_like(query),
        }[which]
        # The policy is applied here, not in SQL: read on past what she may not see (a search in a city's
        # titles may first meet other departments' documents), up to LIST_LIMIT she may, or a bounded look.
        shown: list[PortalDocument] = []
        for batch in range(_MAX_BATCHES):
            rows = await self._conn.fetch(
                _DOCUMENT + f" WHERE i.org = $1 AND {_LISTS[which]} ORDER BY i.created_at DESC, i.document_id"
                f" LIMIT {LIST_LIMIT} OFFSET {batch * LIST_LIMIT}",
                person.org, argument,
            )
            shown += [d for d in map(_document, rows) if d.seen_by(person) >= Access.FULL]
            if len(rows) < LIST_LIMIT or len(shown) >= LIST_LIMIT:
                break
        return shown[:LIST_LIMIT]

    async def trail(self, document_id: UUID) -> list[Step]:
        rows = await self._conn.fetch(
            "SELECT request_id, step, action, person, on_behalf_of, status, reason, created_at, decided_at"
            " FROM router.requests WHERE document_id = $1 ORDER BY created_at, step",
            document_id,
        )
        return [
            Step(r["request_id"], r["step"], r["action"], PersonRef.model_validate(r["person"]), _person_ref(r["on_behalf_of"]),
                 r["status"], r["reason"], r["created_at"], r["decided_at"])
            for r in rows
        ]

    async def to_sign(self, person: Person) -> list[ToSign]:
        """Requests waiting for her on documents still under way, oldest first."""
        rows = await self._conn.fetch(
            "SELECT r.request_id, r.document_id, r.title, r.action, r.step, r.step_count, r.submitted_by, r.on_behalf_of,"
            " r.created_at, r.confidential,"
            " (SELECT coalesce(f.title, i.flow_key) FROM router.instances i"
            "   LEFT JOIN router.flows f ON f.org = i.org AND f.key = i.flow_key WHERE i.document_id = r.document_id) AS flow"
            " FROM signer.requests r JOIN signer.documents d USING (document_id)"
            " WHERE r.org = $1 AND r.signer->>'id' = $2 AND r.status = 'pending' AND d.status = 'active'"
            " ORDER BY r.created_at",
            person.org, person.id,
        )
        waiting = [
            ToSign(r["request_id"], r["document_id"], r["title"], r["action"], r["step"], r["step_count"],
                   PersonRef.model_validate(r["submitted_by"]), _person_ref(r["on_behalf_of"]), r["created_at"], r["confidential"],
                   r["flow"])
            for r in rows
        ]
        readable = await self._readable(person, [w.document_id for w in waiting])
        return [w for w in waiting if w.document_id in readable]

    async def _readable(self, person: Person, document_ids: Sequence[UUID]) -> set[UUID]:
        """Of these documents, those the policy lets her see whole: one query, however many wait for her."""
        if not document_ids:
            return set()
        rows = await self._conn.fetch(
            _DOCUMENT + " WHERE i.org = $1 AND i.document_id = ANY($2::uuid[])", person.org, list(set(document_ids))
        )
        return {d.document_id for d in map(_document, rows) if d.seen_by(person) >= Access.FULL}

    async def may_read(self, person: Person, document_id: UUID) -> bool:
        """Whether the policy lets her see the document whole (title, PDF)."""
        document = await self.document(person.org, document_id)
        return document is not None and document.seen_by(person) >= Access.FULL

    async def absences(self, org: str, people: Sequence[str] | None, now: datetime) -> list[Absence]:
        """Absences not over yet: of these people, or (``None``) of everyone in the org."""
        rows = await self._conn.fetch(
            "SELECT a.person_id, p.name, a.starts_at, a.ends_at, a.note FROM router.absences a"
            " JOIN router.people p ON p.org = a.org AND p.id = a.person_id"
            " WHERE a.org = $1 AND ($2::text[] IS NULL OR a.person_id = ANY($2::text[])) AND a.ends_at > $3"
            " ORDER BY a.starts_at LIMIT 200",
            org, list(people) if people is not None else None, now,
        )
        return [Absence(r["person_id"], r["name"], r["starts_at"], r["ends_at"], r["note"]) for r in rows]

    async def latest_pdf(self, document: PortalDocument) -> bytes:
        """The document as it stands now: its last signed version, or the original."""
        digests = await blobs.version_digests(self._conn, document.document_id, document.facts.org)
        return await blobs.get_blob(self._conn, digests[-1])

    async def uploads(self, person: Person) -> list[Upload]:
        """Her uploads the router has not taken on: still being checked, or refused (and why)."""
        rows = await self._conn.fetch(
            _UPLOAD + " WHERE u.org = $1 AND u.person_id = $2"
            " AND NOT EXISTS (SELECT 1 FROM router.instances i WHERE i.document_id = d.document_id)"
            " ORDER BY u.created_at DESC LIMIT 50",
            person.org, person.id,
        )
        return [_upload(r) for r in rows]

    async def upload(self, person: Person, form_id: UUID) -> Upload | None:
        """One of her uploads, whatever became of it."""
        row = await self._conn.fetchrow(_UPLOAD + " WHERE u.org = $1 AND u.person_id = $2 AND u.form_id = $3", person.org, person.id, form_id)
        return _upload(row) if row else None

    async def record_upload(self, person: Person, form_id: UUID, source: str, external_ref: str, title: str) -> bool:
        """Note an upload before it is sent; False when this form was sent before (by her: the same upload)."""
        done = await self._conn.fetchval(
            "INSERT INTO signer.uploads (form_id, org, person_id, source, external_ref, title) VALUES ($1, $2, $3, $4, $5, $6)"
            " ON CONFLICT DO NOTHING RETURNING form_id",
            form_id, person.org, person.id, source, external_ref, title,
        )
        return done is not None


_UPLOAD = """
SELECT u.form_id, u.external_ref, u.title, u.created_at, d.document_id,
       EXISTS (SELECT 1 FROM router.instances i WHERE i.document_id = d.document_id) AS accepted,
       (SELECT x.reason FROM intake.rejections x WHERE x.org = u.org AND x.source = u.source
         AND x.external_ref = u.external_ref ORDER BY x.created_at DESC LIMIT 1) AS refusal
  FROM signer.uploads u LEFT JOIN intake.documents d ON d.org = u.org AND d.source = u.source AND d.external_ref = u.external_ref
"""


def _upload(row: asyncpg.Record) -> Upload:
    return Upload(row["form_id"], row["external_ref"], row["title"], row["created_at"],
                  row["document_id"] if row["accepted"] else None, row["refusal"])
