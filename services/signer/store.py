"""The signer's tables: documents being signed, requests and their link tokens."""

from datetime import datetime
from uuid import UUID

import asyncpg

from shared.events import SignatureRequested

__all__ = [
    "cancel_pending",
    "current_version",
    "directory_person",
    "end_document",
    "find_download",
    "find_link",
    "get_request",
    "grant_download",
    "held_titles",
    "insert_download",
    "insert_request",
    "insert_token",
    "mark_decided",
    "placeholders_unknown",
    "record_signature",
    "revoke_links_of_mail",
    "save_placeholders",
    "signed_before",
]


async def current_version(conn: asyncpg.Connection, document_id: UUID, org: str, original: str) -> tuple[str, int]:
    """The document's PDF as the signer has it (digest, revision); begun from intake's ``original`` the first time."""
    await conn.execute(
        "INSERT INTO signer.documents (document_id, org, pdf_sha256) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        document_id,
        org,
        original,
    )
    row = await conn.fetchrow("SELECT pdf_sha256, revision FROM signer.documents WHERE document_id = $1", document_id)
    return row["pdf_sha256"], row["revision"]


async def directory_person(conn: asyncpg.Connection, org: str, person_id: str) -> asyncpg.Record | None:
    """The person as the router's directory has them (the signer may read people and roles)."""
    return await conn.fetchrow("SELECT id, name, email FROM router.people WHERE org = $1 AND id = $2", org, person_id)


async def held_titles(conn: asyncpg.Connection, org: str, person_id: str) -> set[str]:
    rows = await conn.fetch("SELECT title FROM router.roles WHERE org = $1 AND $2 = ANY(holders)", org, person_id)
    return {r["title"] for r in rows}


async def insert_request(conn: asyncpg.Connection, event: SignatureRequested) -> None:
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
    conn: asyncpg.Connection, token_hash: bytes, request_id: UUID, person_id: str, expires_at: datetime, mail_id: UUID
) -> None:
    """The request's new link; every earlier one that was not used stops working."""
    await conn.execute(
        "UPDATE signer.tokens SET revoked_at = now() WHERE request_id = $1 AND used_at IS NULL AND revoked_at IS NULL",
        request_id,
    )
    await conn.execute(
        "INSERT INTO signer.tokens (token_hash, request_id, person_id, expires_at, mail_id) VALUES ($1, $2, $3, $4, $5)",
        token_hash,
        request_id,
        person_id,
        expires_at,
        mail_id,
    )


async def revoke_links_of_mail(conn: asyncpg.Connection, mail_id: UUID) -> None:
    """The links made for a mail that never arrived stop working."""
    await conn.execute("UPDATE signer.tokens SET revoked_at = now() WHERE mail_id = $1 AND revoked_at IS NULL", mail_id)
    await conn.execute("UPDATE signer.downloads SET revoked_at = now() WHERE mail_id = $1 AND revoked_at IS NULL", mail_id)


async def get_request(conn: asyncpg.Connection, request_id: UUID) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM signer.requests WHERE request_id = $1", request_id)


async def grant_download(
    conn: asyncpg.Connection, *, document_id: UUID, org: str, person_id: str, pdf_sha256: str, filename: str
) -> None:
    await conn.execute(
        "INSERT INTO signer.download_grants (document_id, person_id, org, pdf_sha256, filename)"
        " VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
        document_id,
        person_id,
        org,
        pdf_sha256,
        filename,
    )


async def insert_download(
    conn: asyncpg.Connection, token_hash: bytes, *, document_id: UUID, person_id: str, expires_at: datetime, mail_id: UUID
) -> bool:
    """A download link for the person's grant (False when there is none); earlier ones stop working."""
    await conn.execute(
        "UPDATE signer.downloads SET revoked_at = now() WHERE document_id = $1 AND person_id = $2 AND revoked_at IS NULL",
        document_id,
        person_id,
    )
    inserted = await conn.fetchval(
        "INSERT INTO signer.downloads (token_hash, document_id, org, person_id, pdf_sha256, filename, expires_at, mail_id)"
        " SELECT $1, document_id, org, person_id, pdf_sha256, filename, $4, $5 FROM signer.download_grants"
        " WHERE document_id = $2 AND person_id = $3 RETURNING true",
        token_hash,
        document_id,
        person_id,
        expires_at,
        mail_id,
    )
    return bool(inserted)


async def find_download(conn: asyncpg.Connection | asyncpg.Pool, token_hash: bytes) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM signer.downloads WHERE token_hash = $1", token_hash)


async def find_link(conn: asyncpg.Connection | asyncpg.Pool, token_hash: bytes, *, lock: bool = False) -> asyncpg.Record | None:
    """The token with its request and document, or None when no such link was ever made.

    ``earlier_open``: a request of an earlier step still waits. ``lock`` locks
    the token, the request and the document (signatures on one document are
    made one after the other), all in this one round trip.
    """
    return await conn.fetchrow(
        "SELECT t.token_hash, t.expires_at, t.used_at, t.revoked_at, t.person_id, r.*, d.status AS document_status,"
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
