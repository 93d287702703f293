"""An in-memory :class:`RouterStore` for unit tests: the same behaviour as PostgresRouterStore
(tests/integration/test_router_store.py runs one contract against both)."""

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

from pydantic import BaseModel

from services.router.domain import Absence, Directory, FlowDefinition, Instance, Request
from services.router.store import StoredAbsence
from shared.events import SignatureRecord, StepSpec

__all__ = ["FakeRouterStore"]


class FakeRouterStore:
    def __init__(self, directory: Directory | None = None, org: str = "default") -> None:
        """``directory`` (with its absences, as imported) is ``org``'s."""
        self.published: list[BaseModel] = []
        self.directories: dict[str, Directory] = {}
        self.versions: dict[str, int] = {}
        self.flow_definitions: dict[tuple[str, str], FlowDefinition] = {}
        self.stored_absences: dict[UUID, StoredAbsence] = {}
        self.instances: dict[UUID, Instance] = {}
        self.requests: dict[UUID, Request] = {}
        self._order: list[UUID] = []
        if directory is not None:
            self.directories[org] = replace(directory, absences={})
            for items in directory.absences.values():
                for absence in items:
                    absence_id = uuid4()
                    self.stored_absences[absence_id] = StoredAbsence(absence_id, org, absence, source="import")

    async def publish(self, message: BaseModel) -> None:
        self.published.append(message)

    def sent(self, kind: type[BaseModel]) -> list[Any]:
        return [m for m in self.published if isinstance(m, kind)]

    # The directory and the flows.

    async def directory_version(self, org: str) -> int:
        return self.versions.get(org, 0)

    async def load_directory(self, org: str, *, absences_from: Sequence[str] = ("import", "api")) -> Directory:
        base = self.directories.get(org, Directory())
        absences: dict[str, list[Absence]] = {}
        for stored in sorted(self.stored_absences.values(), key=lambda s: s.absence.starts_at):
            if stored.org == org and stored.source in absences_from:
                absences.setdefault(stored.absence.person_id, []).append(stored.absence)
        return replace(base, absences={p: tuple(a) for p, a in absences.items()})

    async def replace_directory(self, org: str, directory: Directory) -> None:
        self.directories[org] = replace(directory, absences={})
        imported = {(a.person_id, a.starts_at, a.ends_at) for items in directory.absences.values() for a in items}
        for absence_id, stored in list(self.stored_absences.items()):
            a = stored.absence
            if stored.org == org and stored.source == "import" and (a.person_id, a.starts_at, a.ends_at) not in imported:
                del self.stored_absences[absence_id]
        kept = {
            (s.absence.person_id, s.absence.starts_at, s.absence.ends_at)
            for s in self.stored_absences.values()
            if s.org == org and s.source == "import"
        }
        for person_id, starts_at, ends_at in imported - kept:
            new_id = uuid4()
            self.stored_absences[new_id] = StoredAbsence(new_id, org, Absence(person_id, starts_at, ends_at), source="import")
        self._bump(org)

    async def has_person(self, org: str, person_id: str) -> bool:
        return person_id in self.directories.get(org, Directory()).people

    def _bump(self, org: str) -> None:
        self.versions[org] = self.versions.get(org, 0) + 1

    async def flow(self, org: str, key: str) -> FlowDefinition | None:
        return self.flow_definitions.get((org, key))

    async def save_flow(self, org: str, flow: FlowDefinition) -> None:
        self.flow_definitions[(org, flow.key)] = flow

    async def flows(self, org: str) -> list[FlowDefinition]:
        return sorted((f for (o, _), f in self.flow_definitions.items() if o == org), key=lambda f: f.key)

    # Absences.

    async def add_absence(self, org: str, absence: Absence, *, source: str, note: str = "") -> UUID:
        absence_id = uuid4()
        self.stored_absences[absence_id] = StoredAbsence(absence_id, org, absence, source=source, note=note)
        self._bump(org)
        return absence_id

    async def remove_absence(self, org: str, absence_id: UUID) -> bool:
        stored = self.stored_absences.get(absence_id)
        if stored is None or stored.org != org:
            return False
        del self.stored_absences[absence_id]
        self._bump(org)
        return True

    async def absences(self, org: str, person_id: str | None = None) -> list[StoredAbsence]:
        found = [s for s in self.stored_absences.values() if s.org == org and person_id in (None, s.absence.person_id)]
        return sorted(found, key=lambda s: s.absence.starts_at)

    async def unapplied_absences(self, started_by: datetime) -> list[StoredAbsence]:
        found = [s for s in self.stored_absences.values() if s.applied_at is None and s.absence.starts_at <= started_by]
        return sorted(found, key=lambda s: s.absence.starts_at)

    async def mark_applied(self, absence_id: UUID, at: datetime) -> None:
        self.stored_absences[absence_id] = replace(self.stored_absences[absence_id], applied_at=at)

    async def next_absence_start(self, after: datetime) -> datetime | None:
        starts = [
            s.absence.starts_at for s in self.stored_absences.values() if s.applied_at is None and s.absence.starts_at > after
        ]
        return min(starts, default=None)

    # Documents under way and their requests.

    async def insert_instance(self, instance: Instance) -> None:
        if instance.document_id in self.instances:
            raise ValueError(f"document {instance.document_id} exists")
        self.instances[instance.document_id] = instance

    async def instance(self, document_id: UUID) -> Instance | None:
        return self.instances.get(document_id)

    async def update_instance(self, document_id: UUID, **fields: Any) -> None:
        self.instances[document_id] = replace(self.instances[document_id], **fields)

    async def record_signature(
        self, document_id: UUID, signature: SignatureRecord, pdf_sha256: str, revision: int, *,
        signed: UUID | None = None, status: str | None = None, opens: tuple[int, Sequence[Request]] | None = None,
    ) -> None:
        instance = self.instances[document_id]
        newer = revision > instance.revision
        self.instances[document_id] = replace(
            instance,
            signatures=(*instance.signatures, signature),
            pdf_sha256=pdf_sha256 if newer else instance.pdf_sha256,
            revision=max(revision, instance.revision),
            status=status or instance.status,
        )
        if signed is not None:
            await self.set_request_status([signed], "signed")
        if opens is not None:
            await self.open_step(document_id, *opens)

    async def running_ad_hoc_steps(self, org: str) -> list[tuple[UUID, tuple[StepSpec, ...]]]:
        return [
            (i.document_id, i.steps)
            for i in self.instances.values()
            if i.org == org and i.status == "active" and i.flow_key is None
        ]

    async def insert_request(self, request: Request) -> None:
        self.requests[request.request_id] = request
        self._order.append(request.request_id)

    async def open_step(self, document_id: UUID, step: int, requests: Sequence[Request], *, new: Instance | None = None) -> None:
        if new is not None:
            await self.insert_instance(new)
        await self.update_instance(document_id, current_step=step)
        for request in requests:
            await self.insert_request(request)

    async def start_document(self, instance: Instance, requests: Sequence[Request], *, directory_version: int) -> bool:
        if await self.directory_version(instance.org) != directory_version:
            return False
        await self.open_step(instance.document_id, 1, requests, new=instance)
        return True

    async def request(self, request_id: UUID, *, lock: bool = True) -> Request | None:
        return self.requests.get(request_id)

    def _in_order(self) -> list[Request]:
        return [self.requests[r] for r in self._order]

    async def step_requests(self, document_id: UUID, step: int) -> list[Request]:
        return [r for r in self._in_order() if r.document_id == document_id and r.step == step]

    async def step_of(self, request_id: UUID, document_id: UUID) -> tuple[Request | None, list[Request]]:
        request = self.requests.get(request_id)
        if request is None or request.document_id != document_id:
            return None, []
        return request, await self.step_requests(document_id, request.step)

    async def pending_requests(self, document_id: UUID) -> list[Request]:
        return [r for r in self._in_order() if r.document_id == document_id and r.status == "pending"]

    async def pending_of(self, org: str, person_id: str) -> list[Request]:
        return [
            r
            for r in self._in_order()
            if r.org == org
            and r.person.id == person_id
            and r.status == "pending"
            and self.instances[r.document_id].status == "active"
        ]

    async def people_waiting(self, org: str) -> set[str]:
        return {r.person.id for r in self.requests.values() if r.org == org and r.status == "pending"}

    async def set_request_status(self, request_ids: Sequence[UUID], status: str) -> None:
        for request_id in request_ids:
            self.requests[request_id] = replace(self.requests[request_id], status=status)  # type: ignore[arg-type]
