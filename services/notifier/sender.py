"""Delivers the mail spool over SMTP, apart from event consumption.

A mail that carries a link gets it now, from the signer (links.py): the
spool holds only a placeholder. A request closed meanwhile gets no mail;
when the signer cannot be asked, the mail waits like it would for SMTP.

Mails are claimed in a short transaction and sent with no transaction open,
so a slow SMTP server holds no database locks. Transient failures
(connection refused, timeouts, 4xx, a refused login) are retried with
exponential back-off; a permanent refusal of the recipient or the message
(5xx) or an exhausted retry budget marks the mail failed, publishes
``notification.failed`` and keeps the mail in ``notifier.events.dlq`` for
operators. Every delivered mail publishes ``notification.sent``, once per
document it concerns.

A mail is sent at most once per intent unless the process dies between the
server's acceptance and our commit; its Message-ID is derived from the intent,
so a mail client shows even that rare second copy as the same message.
"""

import json
from collections.abc import Callable
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

import aiosmtplib
import asyncpg
import structlog

from services.notifier import store
from services.notifier.config import NotifierSettings
from services.notifier.domain import retry_delay
from services.notifier.links import LinkGone, LinkSource
from services.notifier.render import LINK
from shared.events import NotificationFailed, NotificationSent
from shared.messaging import Outbox
from shared.topology import DLX
from shared.wakeup import Wakeup

__all__ = ["DEAD_LETTER_KEY", "MailSender"]

DEAD_LETTER_KEY = "notifier.events"  # routes to notifier.events.dlq on esign.dlx


class PermanentFailure(Exception):
    """The server refused this recipient or this message for good."""


class MailSender:
    def __init__(
        self,
        pool: Callable[[], asyncpg.Pool],
        outbox: Outbox,
        settings: NotifierSettings,
        clock: Callable[[], datetime],
        after_commit: Callable[[], None],
        links: LinkSource,
        poll_seconds: float = 1.0,
        batch: int = 20,
    ) -> None:
        self._pool = pool
        self._outbox = outbox
        self._settings = settings
        self._links = links
        self._clock = clock
        self._after_commit = after_commit
        self._poll = poll_seconds
        self._batch = batch
        self._wake = Wakeup()
        # Should the process die mid-attempt, the mail is due again after this.
        self._lease = timedelta(seconds=settings.smtp_timeout_seconds * 3 + 10)

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        while True:
            handled = await self.send_due()
            if handled < self._batch:
                await self._wake.sleep(self._poll)

    async def send_due(self) -> int:
        """Try every mail that is due once; return how many were tried."""
        now = self._clock()
        async with self._pool().acquire() as conn:
            mails = await store.claim_due(conn, now, now + self._lease, self._batch)
        for mail in mails:
            await self._attempt(mail)
        return len(mails)

    async def _attempt(self, mail: asyncpg.Record) -> None:
        log = structlog.get_logger().bind(
            mail_id=str(mail["mail_id"]), document_id=str(mail["document_id"]), kind=mail["kind"]
        )
        attempts = mail["attempts"] + 1
        try:
            await self._deliver(await self._message(mail))
        except LinkGone as gone:
            async with self._pool().acquire() as conn:
                await store.mark_cancelled(conn, mail["mail_id"], f"not sent: {gone}")
            log.info("mail not sent: the signer makes no link for it any more", reason=str(gone))
            return
        except PermanentFailure as exc:
            await self._record(self._fail, mail, str(exc), attempts)
            log.warning("mail refused permanently", error=str(exc))
            return
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            error = f"{exc.__class__.__name__}: {exc}"
            if attempts >= self._settings.mail_max_attempts:
                await self._record(self._fail, mail, f"gave up after {attempts} attempts; last error {error}", attempts)
                log.warning("mail given up", error=error, attempts=attempts)
            else:
                delay = retry_delay(attempts, self._settings.mail_retry_seconds, self._settings.mail_retry_max_seconds)
                async with self._pool().acquire() as conn:
                    await store.mark_retry(conn, mail["mail_id"], error, self._clock() + delay)
                log.info("mail delivery failed; will retry", error=error, attempts=attempts, retry_in=delay.total_seconds())
            return
        await self._record(self._sent, mail, "", attempts)
        log.info("mail sent", recipient=mail["recipient"])

    async def _record(self, outcome: Callable, mail: asyncpg.Record, reason: str, attempts: int) -> None:
        async with self._pool().acquire() as conn, conn.transaction():
            await outcome(conn, mail, reason, attempts)
        self._after_commit()

    async def _sent(self, conn: asyncpg.Connection, mail: asyncpg.Record, _: str, __: int) -> None:
        await store.mark_sent(conn, mail["mail_id"], self._clock())
        for document_id in mail["related_documents"] or [mail["document_id"]]:
            await self._outbox.add(
                conn,
                NotificationSent(
                    correlation_id=document_id,
                    causation_id=mail["mail_id"],
                    org=mail["org"],
                    kind=mail["kind"],
                    recipient=mail["recipient"],
                    subject=mail["subject"],
                ),
            )

    async def _fail(self, conn: asyncpg.Connection, mail: asyncpg.Record, reason: str, attempts: int) -> None:
        await store.mark_failed(conn, mail["mail_id"], reason)
        for document_id in mail["related_documents"] or [mail["document_id"]]:
            await self._outbox.add(
                conn,
                NotificationFailed(
                    correlation_id=document_id,
                    causation_id=mail["mail_id"],
                    org=mail["org"],
                    kind=mail["kind"],
                    recipient=mail["recipient"],
                    reason=reason,
                ),
            )
        # The mail as it would have gone out (without its link), kept where operators look for what could not be delivered.
        intent = {
            "mail_id": str(mail["mail_id"]),
            "org": mail["org"],
            "document_id": str(mail["document_id"]),
            "kind": mail["kind"],
            "recipient": mail["recipient"],
            "subject": mail["subject"],
            "text": (mail["text_body"] or "").replace(LINK, "(link withheld)"),
            "attempts": attempts,
            "reason": reason,
            "failed_at": self._clock().isoformat(),
        }
        await self._outbox.add_raw(
            conn,
            DLX.name,
            DEAD_LETTER_KEY,
            mail["mail_id"],
            json.dumps(intent).encode(),
            {"x-paraaf-reason": reason[:500], "x-paraaf-kind": mail["kind"], "x-paraaf-recipient": mail["recipient"]},
        )

    async def _link(self, mail: asyncpg.Record) -> str | None:
        if mail["link_kind"] == "signing":
            return (await self._links.signing_link(mail["request_id"], mail["mail_id"])).url
        if mail["link_kind"] == "download":
            return (await self._links.download_link(mail["document_id"], mail["link_person"], mail["mail_id"])).url
        return None

    async def _message(self, mail: asyncpg.Record) -> EmailMessage:
        text, html = mail["text_body"], mail["html_body"]
        if (link := await self._link(mail)) is not None:
            text, html = text.replace(LINK, link), html.replace(LINK, link)
        message = EmailMessage()
        message["From"] = self._settings.smtp_from
        message["To"] = mail["recipient"]
        message["Subject"] = mail["subject"]
        message["Date"] = format_datetime(mail["created_at"])
        message["Message-ID"] = make_msgid(idstring=str(mail["mail_id"]), domain="paraaf")
        # RFC 3834: out-of-office replies (signers on leave) must not answer a machine.
        message["Auto-Submitted"] = "auto-generated"
        message.set_content(text)
        message.add_alternative(html, subtype="html")
        return message

    async def _deliver(self, message: EmailMessage) -> None:
        settings = self._settings
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
            if all(500 <= r.code < 600 for r in exc.recipients):
                raise PermanentFailure(f"recipient refused: {'; '.join(str(r) for r in exc.recipients)}") from None
            raise
        except (aiosmtplib.SMTPRecipientRefused, aiosmtplib.SMTPDataError) as exc:
            # Only a refusal of this recipient or this message is final; a 5xx for our login
            # or sender address is our configuration, which an operator can fix.
            if 500 <= exc.code < 600:
                raise PermanentFailure(f"SMTP {exc.code}: {exc.message}") from None
            raise
