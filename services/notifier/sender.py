"""Delivers the mail spool over SMTP, apart from event consumption.

Transient failures (connection refused, 4xx) are retried with exponential
back-off; a permanent refusal (5xx) or an exhausted retry budget marks the
mail failed and publishes ``notification.failed``. Every delivered mail
publishes ``notification.sent``.
"""

import asyncio
import contextlib
from collections.abc import Callable
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import make_msgid

import aiosmtplib
import asyncpg
import structlog

from services.notifier import store
from services.notifier.config import NotifierSettings
from shared.events import NotificationFailed, NotificationSent
from shared.messaging import Outbox

__all__ = ["MailSender", "backoff"]


class PermanentFailure(Exception):
    pass


def backoff(attempts: int) -> timedelta:
    """5 s, 10 s, 20 s ... capped at 15 minutes."""
    return timedelta(seconds=min(5 * 2 ** max(attempts - 1, 0), 900))


class MailSender:
    def __init__(
        self,
        pool: Callable[[], asyncpg.Pool],
        outbox: Outbox,
        settings: NotifierSettings,
        clock: Callable[[], datetime],
        after_commit: Callable[[], None],
        poll_seconds: float = 1.0,
    ) -> None:
        self._pool = pool
        self._outbox = outbox
        self._settings = settings
        self._clock = clock
        self._after_commit = after_commit
        self._poll = poll_seconds
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        while True:
            sent = await self.send_due()
            if sent == 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=self._poll)
                self._wake.clear()

    async def send_due(self, limit: int = 20) -> int:
        """Try every mail that is due once; return how many were handled."""
        async with self._pool().acquire() as conn, conn.transaction():
            mails = await store.due_mails(conn, self._clock(), limit)
            for mail in mails:
                await self._attempt(conn, mail)
        if mails:
            self._after_commit()
        return len(mails)

    async def _attempt(self, conn: asyncpg.Connection, mail: asyncpg.Record) -> None:
        log = structlog.get_logger().bind(mail_id=str(mail["mail_id"]), document_id=str(mail["document_id"]), kind=mail["kind"])
        try:
            await self._deliver(mail)
        except PermanentFailure as exc:
            await self._fail(conn, mail, str(exc))
            log.warning("mail refused permanently", error=str(exc))
            return
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            error = f"{exc.__class__.__name__}: {exc}"
            if mail["attempts"] + 1 >= self._settings.mail_max_attempts:
                await self._fail(conn, mail, f"gave up after {mail['attempts'] + 1} attempts; last error {error}")
                log.warning("mail given up", error=error)
            else:
                await store.mark_retry(conn, mail["mail_id"], error, self._clock() + backoff(mail["attempts"] + 1))
                log.info("mail delivery failed; will retry", error=error, attempts=mail["attempts"] + 1)
            return
        await store.mark_sent(conn, mail["mail_id"], self._clock())
        await self._outbox.add(
            conn,
            NotificationSent(
                correlation_id=mail["document_id"],
                causation_id=mail["mail_id"],
                org=mail["org"],
                kind=mail["kind"],
                recipient=mail["recipient"],
                subject=mail["subject"],
            ),
        )
        log.info("mail sent", recipient=mail["recipient"])

    async def _fail(self, conn: asyncpg.Connection, mail: asyncpg.Record, reason: str) -> None:
        await store.mark_failed(conn, mail["mail_id"], reason)
        await self._outbox.add(
            conn,
            NotificationFailed(
                correlation_id=mail["document_id"],
                causation_id=mail["mail_id"],
                org=mail["org"],
                kind=mail["kind"],
                recipient=mail["recipient"],
                reason=reason,
            ),
        )

    async def _deliver(self, mail: asyncpg.Record) -> None:
        settings = self._settings
        message = EmailMessage()
        message["From"] = settings.smtp_from
        message["To"] = mail["recipient"]
        message["Subject"] = mail["subject"]
        message["Message-ID"] = make_msgid(idstring=str(mail["mail_id"]), domain="paraaf")
        message.set_content(mail["text_body"])
        message.add_alternative(mail["html_body"], subtype="html")
        try:
            await aiosmtplib.send(
                message,
                hostname=settings.smtp_host or "127.0.0.1",
                port=settings.smtp_port,
                username=settings.smtp_user,
                password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
                start_tls=settings.smtp_starttls,
                use_tls=False,
                timeout=settings.smtp_timeout_seconds,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [r.code for r in exc.recipients]
            if all(500 <= code < 600 for code in codes):
                raise PermanentFailure(f"recipient refused: {'; '.join(str(r) for r in exc.recipients)}") from None
            raise
        except aiosmtplib.SMTPResponseException as exc:
            if 500 <= exc.code < 600:
                raise PermanentFailure(f"SMTP {exc.code}: {exc.message}") from None
            raise
