"""Intake's tables: submitted documents and refused submissions."""

from uuid import UUID

import asyncpg

from shared.contract import SubmitDocument

__all__ = ["find_document", "insert_document", "insert_rejection", "set_status"]


async def find_document(conn: asyncpg.Connection, org: str, source: str, external_ref: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT document_id, pdf_sha256 FROM intake.documents WHERE org = $1 AND source = $2 AND external_ref = $3",
        org,
        source,
        external_ref,
    )


async def insert_document(conn: asyncpg.Connection, document_id: UUID, command: SubmitDocument, digest: str) -> None:
    await conn.execute(
        "INSERT INTO intake.documents (document_id, org, source, external_ref, title, flow, steps, submitted_by,"
        " confidential, filename, language, metadata, pdf_sha256)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        document_id,
        command.org,
        command.source,
        command.external_ref,
        command.title,
        command.flow,
        [s.model_dump() for s in command.steps] if command.steps else None,
        command.submitted_by,
        command.confidential,
        command.filename,
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
