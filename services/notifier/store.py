"""The notifier's mail spool."""

from datetime import datetime
from uuid import UUID

import asyncpg

from services.notifier.render import Mail

__all__ = ["due_mails", "mark_failed", "mark_retry", "mark_sent", "queue_mail"]


async def queue_mail(
    conn: asyncpg.Connection, *, mail_id: UUID, org: str, document_id: UUID | None, kind: str, recipient: str, mail: Mail
) -> None:
    await conn.execute(
        "INSERT INTO notifier.mails (mail_id, org, document_id, kind, recipient, subject, text_body, html_body)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (mail_id) DO NOTHING",
        mail_id,
        org,
        document_id,
        kind,
        recipient,
        mail.subject,
        mail.text,
        mail.html,
    )


async def due_mails(conn: asyncpg.Connection, now: datetime, limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT * FROM notifier.mails WHERE status = 'pending' AND next_attempt_at <= $1"
        " ORDER BY next_attempt_at LIMIT $2 FOR UPDATE SKIP LOCKED",
        now,
        limit,
    )


async def mark_sent(conn: asyncpg.Connection, mail_id: UUID, now: datetime) -> None:
    await conn.execute(
        "UPDATE notifier.mails SET status = 'sent', sent_at = $2, attempts = attempts + 1, last_error = NULL,"
        " text_body = NULL, html_body = NULL WHERE mail_id = $1",
        mail_id,
        now,
    )


async def mark_retry(conn: asyncpg.Connection, mail_id: UUID, error: str, next_attempt_at: datetime) -> None:
    await conn.execute(
        "UPDATE notifier.mails SET attempts = attempts + 1, last_error = $2, next_attempt_at = $3 WHERE mail_id = $1",
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
