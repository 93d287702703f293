"""The router's tables: directory, flows, flow instances and their requests."""

from collections.abc import Sequence
from typing import Any
from uuid import UUID

import asyncpg

from services.router.domain import FlowDefinition, Person
from shared.events import PersonRef, SignatureRecord, StepSpec

__all__ = [
    "find_flow",
    "insert_instance",
    "insert_request",
    "lock_instance",
    "lock_pending_of",
    "lock_request",
    "person_ref",
    "set_request_status",
    "step_requests",
]


def person_ref(person: Person, title: str = "") -> PersonRef:
    return PersonRef(id=person.id, name=person.name, email=person.email, language=person.language, title=title)


async def find_flow(conn: asyncpg.Connection, org: str, key: str) -> FlowDefinition | None:
    row = await conn.fetchrow(
        "SELECT key, title, department, group_key, confidential, steps FROM router.flows WHERE org = $1 AND key = $2",
        org,
        key,
    )
    if row is None:
        return None
    return FlowDefinition(
        key=row["key"],
        title=row["title"],
        department=row["department"],
        group=row["group_key"],
        confidential=row["confidential"],
        steps=tuple(StepSpec.model_validate(s) for s in row["steps"]),
    )


async def insert_instance(
    conn: asyncpg.Connection,
    *,
    document_id: UUID,
    org: str,
    flow: FlowDefinition | None,
    title: str,
    filename: str,
    submitted_by: PersonRef,
    confidential: bool,
    steps: Sequence[StepSpec],
    pdf_sha256: str,
) -> None:
    await conn.execute(
        "INSERT INTO router.instances (document_id, org, flow_key, title, filename, submitted_by, confidential,"
        " department, group_key, steps, pdf_sha256) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        document_id,
        org,
        flow.key if flow else None,
        title,
        filename,
        submitted_by.model_dump(),
        confidential,
        flow.department if flow else None,
        flow.group if flow else None,
        [s.model_dump() for s in steps],
        pdf_sha256,
    )


async def lock_instance(conn: asyncpg.Connection, document_id: UUID) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM router.instances WHERE document_id = $1 FOR UPDATE", document_id)


async def update_instance(conn: asyncpg.Connection, document_id: UUID, **fields: Any) -> None:
    columns = ", ".join(f"{name} = ${i}" for i, name in enumerate(fields, start=2))
    await conn.execute(
        f"UPDATE router.instances SET {columns}, updated_at = now() WHERE document_id = $1", document_id, *fields.values()
    )


async def record_signature(
    conn: asyncpg.Connection, document_id: UUID, signature: SignatureRecord, pdf_sha256: str, revision: int
) -> None:
    """Append the signature; the PDF moves only forward (signatures may be reported out of order)."""
    await conn.execute(
        "UPDATE router.instances SET signatures = signatures || $2::jsonb,"
        " pdf_sha256 = CASE WHEN $4 > revision THEN $3 ELSE pdf_sha256 END,"
        " revision = greatest(revision, $4), updated_at = now() WHERE document_id = $1",
        document_id,
        [signature.model_dump(mode="json")],
        pdf_sha256,
        revision,
    )


async def insert_request(
    conn: asyncpg.Connection,
    *,
    request_id: UUID,
    document_id: UUID,
    org: str,
    step: int,
    slot: str,
    person: PersonRef,
    on_behalf_of: PersonRef | None,
    reason: str | None,
    action: str,
    replaces: UUID | None = None,
) -> None:
    await conn.execute(
        "INSERT INTO router.requests (request_id, document_id, org, step, slot, person_id, person, on_behalf_of,"
        " reason, action, replaces) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        request_id,
        document_id,
        org,
        step,
        slot,
        person.id,
        person.model_dump(),
        on_behalf_of.model_dump() if on_behalf_of else None,
        reason,
        action,
        replaces,
    )


async def lock_request(conn: asyncpg.Connection, request_id: UUID) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM router.requests WHERE request_id = $1 FOR UPDATE", request_id)


async def set_request_status(conn: asyncpg.Connection, request_ids: Sequence[UUID], status: str) -> None:
    await conn.execute(
        "UPDATE router.requests SET status = $2, decided_at = now() WHERE request_id = ANY($1::uuid[])",
        list(request_ids),
        status,
    )


async def step_requests(conn: asyncpg.Connection, document_id: UUID, step: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT request_id, slot, status, person_id FROM router.requests WHERE document_id = $1 AND step = $2"
        " ORDER BY created_at",
        document_id,
        step,
    )


async def pending_requests(conn: asyncpg.Connection, document_id: UUID) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT request_id FROM router.requests WHERE document_id = $1 AND status = 'pending'", document_id
    )


async def lock_pending_of(conn: asyncpg.Connection, org: str, person_id: str) -> list[asyncpg.Record]:
    """A person's open requests with what a new request needs of their document, locked."""
    return await conn.fetch(
        "SELECT r.*, i.title, i.filename, i.submitted_by, i.pdf_sha256, i.confidential, i.steps,"
        " jsonb_array_length(i.steps) AS step_count"
        " FROM router.requests r JOIN router.instances i USING (document_id)"
        " WHERE r.org = $1 AND r.person_id = $2 AND r.status = 'pending' AND i.status = 'active'"
        " ORDER BY r.created_at FOR UPDATE OF r",
        org,
        person_id,
    )
