"""Intake's tables: the sources allowed to submit, submitted documents and refused submissions."""

from uuid import UUID

import asyncpg

from services.intake.domain import SourcePolicy
from shared.contract import SubmitDocument

__all__ = [
    "delete_source",
    "find_document",
    "insert_document",
    "insert_rejection",
    "list_sources",
    "set_status",
    "source_policy",
    "upsert_source",
]


def _policy(row: asyncpg.Record) -> SourcePolicy:
    return SourcePolicy(
        source=row["source"],
        org=row["org"],
        flows=frozenset(row["flows"]) if row["flows"] is not None else None,
        submitters=frozenset(row["submitters"]) if row["submitters"] is not None else None,
        ad_hoc_steps=row["ad_hoc_steps"],
    )


async def source_policy(conn: asyncpg.Connection, source: str) -> SourcePolicy | None:
    row = await conn.fetchrow("SELECT * FROM intake.sources WHERE source = $1", source)
    return _policy(row) if row else None


async def upsert_source(conn: asyncpg.Connection, policy: SourcePolicy) -> bool:
    """Register or change a source; True when it is new."""
    return await conn.fetchval(
        "INSERT INTO intake.sources (source, org, flows, submitters, ad_hoc_steps) VALUES ($1, $2, $3, $4, $5)"
        " ON CONFLICT (source) DO UPDATE SET org = $2, flows = $3, submitters = $4, ad_hoc_steps = $5, updated_at = now()"
        " RETURNING xmax = 0",
        policy.source,
        policy.org,
        sorted(policy.flows) if policy.flows is not None else None,
        sorted(policy.submitters) if policy.submitters is not None else None,
        policy.ad_hoc_steps,
    )


async def list_sources(conn: asyncpg.Connection) -> list[SourcePolicy]:
    return [_policy(r) for r in await conn.fetch("SELECT * FROM intake.sources ORDER BY source")]


async def delete_source(conn: asyncpg.Connection, source: str) -> bool:
    return bool(await conn.fetchval("DELETE FROM intake.sources WHERE source = $1 RETURNING true", source))


async def find_document(conn: asyncpg.Connection, org: str, source: str, external_ref: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT document_id, pdf_sha256 FROM intake.documents WHERE org = $1 AND source = $2 AND external_ref = $3",
        org,
        source,
        external_ref,
    )


async def insert_document(
    conn: asyncpg.Connection, document_id: UUID, command: SubmitDocument, digest: str, *, org: str, filename: str
) -> None:
    await conn.execute(
        "INSERT INTO intake.documents (document_id, org, source, external_ref, title, flow, steps, submitted_by,"
        " confidential, filename, language, metadata, pdf_sha256)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        document_id,
        org,
        command.source,
        command.external_ref,
        command.title,
        command.flow,
        [s.model_dump() for s in command.steps] if command.steps else None,
        command.submitted_by,
        command.confidential,
        filename,
        command.language,
        command.metadata,
        digest,
    )


async def insert_rejection(
    conn: asyncpg.Connection,
    rejection_id: UUID,
    org: str,
    source: str,
    external_ref: str | None,
    document_id: UUID | None,
    code: str,
    reason: str,
) -> None:
    await conn.execute(
        "INSERT INTO intake.rejections (id, org, source, external_ref, document_id, code, reason)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7)",
        rejection_id,
        org,
        source,
        external_ref,
        document_id,
        code,
        reason,
    )


async def set_status(
    conn: asyncpg.Connection, document_id: UUID, status: str, reason: str | None = None, *, pdf_sha256: str | None = None
) -> asyncpg.Record | None:
    """Move a document to ``status``; None when intake does not know it."""
    return await conn.fetchrow(
        "UPDATE intake.documents SET status = $2, reason = $3, signed_sha256 = coalesce($4, signed_sha256),"
        " updated_at = now() WHERE document_id = $1 RETURNING *",
        document_id,
        status,
        reason,
        pdf_sha256,
    )
