"""The notifier's tables: the mail spool, the reminder schedule (with the
requests and documents that ended) and the moves waiting to be told."""

from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

import asyncpg

from services.notifier.render import Mail
from shared.events import SignatureReassigned

__all__ = [
    "cancel_link_mails",
    "claim_due",
    "close_request",
    "document_ended",
    "due_reminders",
    "end_document",
    "mark_cancelled",
    "mark_failed",
    "mark_moves_told",
    "mark_retry",
    "mark_sent",
    "moves_to_tell",
    "open_schedule",
    "queue_mail",
    "record_move",
    "reminder_issued",
    "schedule_of",
    "waiting_moves",
]


# The mail spool.


async def queue_mail(
    conn: asyncpg.Connection,
    *,
    mail_id: UUID,
    org: str,
    document_id: UUID,
    kind: str,
    recipient: str,
    mail: Mail,
    now: datetime,
    request_id: UUID | None = None,
    related_documents: Sequence[UUID] | None = None,
    link_kind: str | None = None,
    link_person: str | None = None,
) -> bool:
    """Queue one mail per intent; False when this intent already has its mail."""
    queued = await conn.fetchval(
        "INSERT INTO notifier.mails (mail_id, org, document_id, kind, recipient, subject, text_body, html_body,"
        " next_attempt_at, created_at, request_id, related_documents, link_kind, link_person)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $10, $11, $12, $13) ON CONFLICT (mail_id) DO NOTHING RETURNING true",
        mail_id,
        org,
        document_id,
        kind,
        recipient,
        mail.subject,
        mail.text,
        mail.html,
        now,
        request_id,
        list(related_documents) if related_documents else None,
        link_kind,
        link_person,
    )
    return bool(queued)


async def claim_due(conn: asyncpg.Connection, now: datetime, lease_until: datetime, limit: int) -> list[asyncpg.Record]:
    """Take up to ``limit`` due mails for one attempt; they are due again at ``lease_until``
    should this process die before it records how the attempt went."""
    return await conn.fetch(
        "UPDATE notifier.mails SET next_attempt_at = $2 WHERE mail_id IN ("
        " SELECT mail_id FROM notifier.mails WHERE status = 'pending' AND next_attempt_at <= $1"
        " ORDER BY next_attempt_at LIMIT $3 FOR UPDATE SKIP LOCKED) RETURNING *",
        now,
        lease_until,
        limit,
    )


async def mark_sent(conn: asyncpg.Connection, mail_id: UUID, now: datetime) -> None:
    # No status condition: a mail cancelled while it was on the wire was still delivered.
    await conn.execute(
        "UPDATE notifier.mails SET status = 'sent', sent_at = $2, attempts = attempts + 1, last_error = NULL,"
        " text_body = NULL, html_body = NULL WHERE mail_id = $1",
        mail_id,
        now,
    )


async def mark_retry(conn: asyncpg.Connection, mail_id: UUID, error: str, next_attempt_at: datetime) -> None:
    await conn.execute(
        "UPDATE notifier.mails SET attempts = attempts + 1, last_error = $2, next_attempt_at = $3"
        " WHERE mail_id = $1 AND status = 'pending'",
        mail_id,
        error,
        next_attempt_at,
    )


async def mark_failed(conn: asyncpg.Connection, mail_id: UUID, error: str) -> None:
    await conn.execute(
        "UPDATE notifier.mails SET status = 'failed', attempts = attempts + 1, last_error = $2,"
        " text_body = NULL, html_body = NULL WHERE mail_id = $1",
        mail_id,
        error,
    )


async def mark_cancelled(conn: asyncpg.Connection, mail_id: UUID, reason: str) -> None:
    await conn.execute(
        "UPDATE notifier.mails SET status = 'cancelled', last_error = $2, text_body = NULL, html_body = NULL"
        " WHERE mail_id = $1 AND status = 'pending'",
        mail_id,
        reason,
    )


async def cancel_link_mails(conn: asyncpg.Connection, *, request_id: UUID | None = None, document_id: UUID | None = None) -> None:
    """Unsent signing-link mails of a closed request (or of every request of a document)
    will not go out: their link no longer works."""
    await conn.execute(
        "UPDATE notifier.mails SET status = 'cancelled', text_body = NULL, html_body = NULL"
        " WHERE status = 'pending' AND request_id IS NOT NULL AND (request_id = $1 OR document_id = $2)",
        request_id,
        document_id,
    )


# Requests, their reminders, and documents that ended.


async def document_ended(conn: asyncpg.Connection, document_id: UUID) -> bool:
    return bool(await conn.fetchval("SELECT true FROM notifier.ended_documents WHERE document_id = $1", document_id))


async def open_schedule(
    conn: asyncpg.Connection,
    *,
    request_id: UUID,
    org: str,
    document_id: UUID,
    requested_at: datetime,
    due_at: datetime,
    next_at: datetime | None,
) -> None:
    await conn.execute(
        "INSERT INTO notifier.reminders (request_id, org, document_id, requested_at, due_at, next_at, status, updated_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $4) ON CONFLICT (request_id) DO NOTHING",
        request_id,
        org,
        document_id,
        requested_at,
        due_at,
        next_at,
        "open" if next_at is not None else "exhausted",
    )


async def schedule_of(conn: asyncpg.Connection, request_id: UUID, *, lock: bool = False) -> asyncpg.Record | None:
    """The request's row; ``lock`` holds it so that closing the request waits for this transaction."""
    return await conn.fetchrow(
        "SELECT * FROM notifier.reminders WHERE request_id = $1" + (" FOR UPDATE" if lock else ""), request_id
    )


async def close_request(
    conn: asyncpg.Connection, *, request_id: UUID, org: str, document_id: UUID, closed_by: str, now: datetime
) -> None:
    """No more reminders or link mails for this request, even if its first command is still on its way."""
    await conn.execute(
        "INSERT INTO notifier.reminders (request_id, org, document_id, status, closed_by, updated_at)"
        " VALUES ($1, $2, $3, 'closed', $4, $5)"
        " ON CONFLICT (request_id) DO UPDATE SET status = 'closed', next_at = NULL, closed_by = $4, updated_at = $5"
        " WHERE notifier.reminders.status <> 'closed'",
        request_id,
        org,
        document_id,
        closed_by,
        now,
    )
    await cancel_link_mails(conn, request_id=request_id)


async def end_document(conn: asyncpg.Connection, *, document_id: UUID, org: str, status: str, now: datetime) -> None:
    await conn.execute(
        "INSERT INTO notifier.ended_documents (document_id, org, status, ended_at) VALUES ($1, $2, $3, $4)"
        " ON CONFLICT (document_id) DO NOTHING",
        document_id,
        org,
        status,
        now,
    )
    await conn.execute(
        "UPDATE notifier.reminders SET status = 'closed', next_at = NULL, closed_by = $2, updated_at = $3"
        " WHERE document_id = $1 AND status <> 'closed'",
        document_id,
        f"document.{status}",
        now,
    )
    await cancel_link_mails(conn, document_id=document_id)


async def due_reminders(conn: asyncpg.Connection, now: datetime, limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT * FROM notifier.reminders WHERE status = 'open' AND next_at <= $1"
        " ORDER BY next_at LIMIT $2 FOR UPDATE SKIP LOCKED",
        now,
        limit,
    )


async def reminder_issued(
    conn: asyncpg.Connection, request_id: UUID, number: int, next_at: datetime | None, now: datetime
) -> None:
    await conn.execute(
        "UPDATE notifier.reminders SET sent = $2, next_at = $3, updated_at = $4,"
        " status = CASE WHEN $3::timestamptz IS NULL THEN 'exhausted' ELSE 'open' END WHERE request_id = $1",
        request_id,
        number,
        next_at,
        now,
    )


# Moves away from an absent person, told in one notice per absence.


async def record_move(conn: asyncpg.Connection, event: SignatureReassigned, now: datetime) -> None:
    await conn.execute(
        "INSERT INTO notifier.moves (event_id, org, document_id, person_id, from_person, to_person, title, reason,"
        " moved_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (event_id) DO NOTHING",
        event.event_id,
        event.org,
        event.document_id,
        event.from_person.id,
        event.from_person.model_dump(),
        event.to_person.model_dump(),
        event.title,
        event.reason,
        now,
    )


async def moves_to_tell(conn: asyncpg.Connection, moved_before: datetime) -> list[tuple[str, str]]:
    """(org, person) whose first untold move happened before ``moved_before``."""
    rows = await conn.fetch(
        "SELECT org, person_id FROM notifier.moves WHERE mail_id IS NULL"
        " GROUP BY org, person_id HAVING min(moved_at) <= $1",
        moved_before,
    )
    return [(r["org"], r["person_id"]) for r in rows]


async def waiting_moves(conn: asyncpg.Connection, org: str, person_id: str) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT * FROM notifier.moves WHERE org = $1 AND person_id = $2 AND mail_id IS NULL"
        " ORDER BY moved_at, event_id FOR UPDATE SKIP LOCKED",
        org,
        person_id,
    )


async def mark_moves_told(conn: asyncpg.Connection, event_ids: Sequence[UUID], mail_id: UUID) -> None:
    await conn.execute("UPDATE notifier.moves SET mail_id = $2 WHERE event_id = ANY($1::uuid[])", list(event_ids), mail_id)
