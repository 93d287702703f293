"""The signer's tables: documents being signed, requests and their link tokens."""

from datetime import datetime
from uuid import UUID

import asyncpg

from shared.events import SignatureRequested

__all__ = [
    "cancel_pending",
    "end_document",
    "find_download",
    "find_link",
    "get_request",
    "insert_download",
    "insert_request",
    "insert_token",
    "mark_decided",
    "placeholders_unknown",
    "record_signature",
    "save_placeholders",
    "signed_before",
]


async def insert_request(conn: asyncpg.Connection, event: SignatureRequested) -> None:
    await conn.execute(
        "INSERT INTO signer.documents (document_id, org, pdf_sha256) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        event.document_id,
        event.org,
        event.pdf_sha256,
    )
    await conn.execute(
        "INSERT INTO signer.requests (request_id, document_id, org, step, step_count, action, signer, on_behalf_of,"
        " title, filename, submitted_by, confidential, signature_count)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        event.request_id,
        event.document_id,
        event.org,
        event.step,
        event.step_count,
        event.action,
        event.signer.model_dump(),
        event.on_behalf_of.model_dump() if event.on_behalf_of else None,
        event.title,
        event.filename,
        event.submitted_by.model_dump(),
        event.confidential,
        event.signature_count,
    )


async def insert_token(
    conn: asyncpg.Connection, token_hash: bytes, request_id: UUID, person_id: str, expires_at: datetime
) -> None:
    await conn.execute(
        "INSERT INTO signer.tokens (token_hash, request_id, person_id, expires_at) VALUES ($1, $2, $3, $4)",
        token_hash,
        request_id,
        person_id,
        expires_at,
    )


async def get_request(conn: asyncpg.Connection, request_id: UUID) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM signer.requests WHERE request_id = $1", request_id)


async def insert_download(
    conn: asyncpg.Connection,
    token_hash: bytes,
    *,
    document_id: UUID,
    org: str,
    person_id: str,
    pdf_sha256: str,
    filename: str,
    expires_at: datetime,
) -> None:
    await conn.execute(
        "INSERT INTO signer.downloads (token_hash, document_id, org, person_id, pdf_sha256, filename, expires_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7)",
        token_hash,
        document_id,
        org,
        person_id,
        pdf_sha256,
        filename,
        expires_at,
    )


async def find_download(conn: asyncpg.Connection | asyncpg.Pool, token_hash: bytes) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM signer.downloads WHERE token_hash = $1", token_hash)


async def find_link(conn: asyncpg.Connection | asyncpg.Pool, token_hash: bytes, *, lock: bool = False) -> asyncpg.Record | None:
    """The token with its request and document, or None when no such link was ever made.

    ``earlier_open``: a request of an earlier step still waits. ``lock`` locks
    the token, the request and the document (signatures on one document are
    made one after the other), all in this one round trip.
    """
    return await conn.fetchrow(
        "SELECT t.token_hash, t.expires_at, t.used_at, t.person_id, r.*, d.status AS document_status,"
        " d.pdf_sha256 AS document_pdf_sha256, d.revision AS document_revision,"
        " d.placeholders AS document_placeholders,"
        " EXISTS (SELECT 1 FROM signer.requests e WHERE e.document_id = r.document_id AND e.step < r.step"
        "         AND e.status = 'pending') AS earlier_open"
        " FROM signer.tokens t JOIN signer.requests r USING (request_id) JOIN signer.documents d USING (document_id)"
        " WHERE t.token_hash = $1" + (" FOR UPDATE OF t, r, d" if lock else ""),
        token_hash,
    )


async def signed_before(conn: asyncpg.Connection | asyncpg.Pool, document_id: UUID) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT signer, on_behalf_of, action, step, decided_at FROM signer.requests"
        " WHERE document_id = $1 AND status = 'signed' ORDER BY decided_at",
        document_id,
    )


async def record_signature(
    conn: asyncpg.Connection,
    *,
    document_id: UUID,
    pdf_sha256: str,
    revision: int,
    placeholders: list[dict],
    request_id: UUID,
    token_hash: bytes,
    field_name: str,
    at: datetime,
) -> None:
    """The document's new version (placeholders kept from its first signature), the request signed and
    its token spent: one statement, as this sits between the signature and the commit a signer waits for."""
    await conn.execute(
        "WITH document AS (UPDATE signer.documents SET pdf_sha256 = $2, revision = $3,"
        "   placeholders = COALESCE(placeholders, $4), updated_at = now() WHERE document_id = $1),"
        " decided AS (UPDATE signer.requests SET status = 'signed', field_name = $6, decided_at = $7"
        "   WHERE request_id = $5)"
        " UPDATE signer.tokens SET used_at = $7 WHERE token_hash = $8",
        document_id,
        pdf_sha256,
        revision,
        placeholders,
        request_id,
        field_name,
        at,
        token_hash,
    )


async def placeholders_unknown(conn: asyncpg.Connection, document_id: UUID) -> bool:
    return bool(
        await conn.fetchval(
            "SELECT placeholders IS NULL FROM signer.documents WHERE document_id = $1 FOR UPDATE", document_id
        )
    )


async def save_placeholders(conn: asyncpg.Connection, document_id: UUID, placeholders: list[dict]) -> None:
    await conn.execute(
        "UPDATE signer.documents SET placeholders = $2 WHERE document_id = $1 AND placeholders IS NULL",
        document_id,
        placeholders,
    )


async def mark_decided(
    conn: asyncpg.Connection,
    *,
    request_id: UUID,
    token_hash: bytes,
    status: str,
    at: datetime,
    field_name: str | None = None,
    reason: str | None = None,
) -> None:
    """The request signed or declined and its token spent, in one statement."""
    await conn.execute(
        "WITH decided AS (UPDATE signer.requests SET status = $2, field_name = $3, status_reason = $4, decided_at = $5"
        " WHERE request_id = $1) UPDATE signer.tokens SET used_at = $5 WHERE token_hash = $6",
        request_id,
        status,
        field_name,
        reason,
        at,
        token_hash,
    )


async def cancel_pending(
    conn: asyncpg.Connection, *, document_id: UUID | None = None, request_id: UUID | None = None,
    status: str = "cancelled", reason: str,
) -> None:
    await conn.execute(
        "UPDATE signer.requests SET status = $3, status_reason = $4, decided_at = now()"
        " WHERE status = 'pending' AND (document_id = $1 OR request_id = $2)",
        document_id,
        request_id,
        status,
        reason,
    )


async def end_document(conn: asyncpg.Connection, document_id: UUID, status: str) -> None:
    await conn.execute(
        "UPDATE signer.documents SET status = $2, updated_at = now() WHERE document_id = $1", document_id, status
    )
