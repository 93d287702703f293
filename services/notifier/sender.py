"""Delivers the mail spool over SMTP, apart from event consumption.

A mail that carries a link gets it now, from the signer (links.py): the
spool holds only a placeholder. A request closed meanwhile gets no mail, nor
does a sign-in attempt the signer no longer knows (used or expired);
when the signer cannot be asked, the mail waits like it would for SMTP.

Mails are claimed in a short transaction and sent with no transaction open,
so a slow SMTP server holds no database locks; up to ``parallel`` of them are
on their way at once (PARAAF_MAIL_PARALLEL), since each spends most of its
time waiting on the signer's link API, the SMTP server and the database, and
one at a time capped the whole pipeline at what one mail's round trips allow
(bench/pipeline.py, docs/performance.md). The mails for every sender free at
a moment are claimed in one transaction; mails delivered while another is
being marked sent are marked together in the next transaction (a group
commit); SMTP sessions stay open from one mail to the next (SmtpDelivery).
A claim is a short lease, renewed while the mail is on its way: should the
process die mid-attempt (SIGKILL), the mail is due again within LEASE; a stop
gives back the claims of the mails not sent, so they go out at the next start.
Transient failures (connection refused, timeouts, 4xx, a refused login) are retried with
exponential back-off; a final refusal of the recipient or the message
(domain.final_refusal) or an exhausted retry budget marks the mail failed,
publishes ``notification.failed`` and keeps the mail in ``notifier.events.dlq``
for operators. Every delivered mail publishes ``notification.sent``, once per
document it concerns.

A mail is sent at most once per intent unless the process dies between the
server's acceptance and our commit; its Message-ID is derived from the intent,
so a mail client shows even that rare second copy as the same message.
"""

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta
from email.message import Message
from email.utils import format_datetime, parseaddr
from uuid import UUID

import aiosmtplib
import structlog

from services.notifier.compose import compose
from services.notifier.config import NotifierSettings
from services.notifier.domain import GiveUp, RetryBudget, final_refusal
from services.notifier.links import LinkGone, LinkSource, SignerNotAnswering
from services.notifier.pipelining import PipelinedSession, pipelines
from services.notifier.render import LINK
from services.notifier.store import SpooledMail, Transaction
from shared.clock import Clock
from shared.events import NotificationFailed, NotificationSent
from shared.loops import BackgroundLoop
from shared.metrics import MAILS_FAILED, MAILS_SENT

__all__ = ["LEASE", "SIGNER_RETRY", "SMTP_IDLE", "MailSender", "message_id", "PermanentFailure", "Smtp", "SmtpDelivery"]

# How long a mail waits when the signer does not answer for its link (a restart takes seconds); not an attempt.
SIGNER_RETRY = timedelta(seconds=5)

# How long a claimed mail stays with the notifier that claimed it, renewed every quarter of it while the mail is on
# its way: after a SIGKILL, the mail is due again within this.
LEASE = timedelta(seconds=20)

# How long an SMTP session may sit unused before we close it.
SMTP_IDLE = timedelta(seconds=30)

Smtp = Callable[[Message], Awaitable[None]]  # hands one message to the mail server
_Session = aiosmtplib.SMTP | PipelinedSession


class PermanentFailure(Exception):
    """The server refused this recipient or this message for good."""


class SmtpDelivery:
    """The configured SMTP server; its final refusals raise :class:`PermanentFailure`.

    Its sessions stay open between mails, one per sender on its way at once: a new session per mail (connect, EHLO,
    STARTTLS and login, QUIT, and a thread to look up our own host name) cost more round trips than the mail itself.
    A session is dropped after any error, so the next mail starts clean; one the server closed while it sat idle is
    replaced and the mail sent on the new one; one idle for ``idle_seconds`` is closed with QUIT, before the server's
    own timeout (5 minutes or more, RFC 5321) would cut it. With a server that offers PIPELINING, a mail's envelope
    and DATA go in one write (pipelining.py): two round trips a mail instead of four.
    """

    def __init__(self, settings: NotifierSettings, *, idle_seconds: float = SMTP_IDLE.total_seconds()) -> None:
        self._settings = settings
        self._idle_seconds = idle_seconds
        self._idle: list[tuple[_Session, float]] = []  # sessions not in use, with when each was last used
        self._closing: asyncio.Task[None] | None = None

    async def __call__(self, message: Message) -> None:
        try:
            await self._send(message)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            if final_refusal("recipient", [r.code for r in exc.recipients]):
                raise PermanentFailure(f"recipient refused: {'; '.join(str(r) for r in exc.recipients)}") from None
            raise
        except (aiosmtplib.SMTPRecipientRefused, aiosmtplib.SMTPDataError) as exc:
            if final_refusal("recipient" if isinstance(exc, aiosmtplib.SMTPRecipientRefused) else "message", [exc.code]):
                raise PermanentFailure(f"SMTP {exc.code}: {exc.message}") from None
            raise

    async def aclose(self) -> None:
        """QUIT every idle session (at shutdown, once no mail is on its way)."""
        if self._closing is not None:
            self._closing.cancel()
        idle, self._idle = self._idle, []
        await asyncio.gather(*(_quit(session) for session, _ in idle))

    async def _send(self, message: Message) -> None:
        if (session := self._take()) is not None:
            try:
                await self._send_on(session, message)
                return
            except aiosmtplib.SMTPServerDisconnected:  # closed by the server while idle: the mail goes on a new one
                pass
            except aiosmtplib.SMTPResponseException as exc:
                if exc.code != aiosmtplib.SMTPStatus.domain_unavailable:  # 421: the server is closing this session (its timeout)
                    raise
        await self._send_on(await self._connect(), message)

    async def _send_on(self, session: _Session, message: Message) -> None:
        try:
            await session.send_message(message)
        except BaseException:  # whatever state the session is in, it is not used again
            session.close()
            raise
        self._give_back(session)

    async def _connect(self) -> _Session:
        settings = self._settings
        session = aiosmtplib.SMTP(
            hostname=settings.smtp_host or "127.0.0.1",
            port=settings.smtp_port,
            username=settings.smtp_user,
            password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
            start_tls=settings.smtp_starttls,
            use_tls=False,
            timeout=settings.smtp_timeout_seconds,
        )
        try:
            await session.connect()
            return PipelinedSession(session) if await pipelines(session) else session
        except BaseException:
            session.close()
            raise

    def _take(self) -> _Session | None:
        while self._idle:
            session, _ = self._idle.pop()  # the most recently used: the least likely to have been cut
            if session.is_connected:
                return session
        return None

    def _give_back(self, session: _Session) -> None:
        self._idle.append((session, time.monotonic()))
        if self._closing is None or self._closing.done():
            self._closing = asyncio.create_task(self._close_idle())

    async def _close_idle(self) -> None:
        while self._idle:
            oldest = min(since for _, since in self._idle)
            await asyncio.sleep(max(0.0, oldest + self._idle_seconds - time.monotonic()))
            cutoff = time.monotonic() - self._idle_seconds
            expired = [session for session, since in self._idle if since <= cutoff]
            self._idle = [(session, since) for session, since in self._idle if since > cutoff]
            await asyncio.gather(*(_quit(session) for session in expired))


async def _quit(session: _Session) -> None:
    try:
        await session.quit()
    except (aiosmtplib.SMTPException, OSError, TimeoutError):
        session.close()


def message_id(mail_id: UUID, sender: str) -> str:
    """The same for every attempt of one mail, so a copy sent again after a crash is shown as the same message."""
    domain = parseaddr(sender)[1].rpartition("@")[2] or "paraaf.invalid"
    return f"<{mail_id}@{domain}>"


class MailSender(BackgroundLoop):
    def __init__(
        self,
        transaction: Transaction,
        settings: NotifierSettings,
        *,
        clock: Clock,
        after_commit: Callable[[], None],
        links: LinkSource,
        smtp: Smtp | None = None,
        poll_seconds: float = 1.0,
        batch: int = 20,
        lease: timedelta = LEASE,
        parallel: int = 1,
        alone: Transaction | None = None,
    ) -> None:
        super().__init__(poll_seconds)
        self._transaction = transaction
        # For a change that is one statement (a claim, a release, a retry): atomic by itself, it needs no BEGIN and
        # COMMIT of its own, two round trips more than the statement.
        self._alone = alone or transaction
        self._from = settings.smtp_from
        self._links = links
        self._smtp = smtp or SmtpDelivery(settings)
        self._clock = clock
        self._after_commit = after_commit
        self._batch = batch
        self._parallel = parallel
        self._lease = lease
        self._unmarked: dict[UUID, SpooledMail] = {}  # delivered, waiting to be marked sent (_sent)
        self._marking = asyncio.Lock()
        self._budget = RetryBudget(settings.mail_max_attempts, settings.mail_retry_seconds, settings.mail_retry_max_seconds)

    async def tick(self) -> bool:
        return await self.send_due() >= self._batch

    async def send_due(self) -> int:
        """Try up to a batch of the mails that are due, once each, up to ``parallel`` on their way at a time;
        return how many were tried. The mails for every sender free at that moment are claimed together, in one
        transaction; stopped, the round gives back the claims of the mails not sent."""
        on_way: dict[UUID, SpooledMail] = {}
        freed = asyncio.Event()
        tried = 0

        async def send(mail: SpooledMail) -> None:
            await self._attempt(mail)
            del on_way[mail.mail_id]  # its attempt is recorded (stopped before that, it stays to be given back)
            freed.set()

        try:
            async with self._leases_renewed(on_way), asyncio.TaskGroup() as senders:  # renewed till the last is sent
                drained = False  # the last claim found fewer due mails than it asked for
                while tried < self._batch:
                    freed.clear()
                    if (free := min(self._parallel - len(on_way), self._batch - tried)) > 0 and not drained:
                        claimed = await self._claim(free, list(on_way))
                        tried += len(claimed)
                        drained = len(claimed) < free
                        for mail in claimed:
                            on_way[mail.mail_id] = mail
                            senders.create_task(send(mail))
                    if not on_way:
                        break
                    await freed.wait()  # a sender came free: more may have come due meanwhile, if we were woken
                    # Not asked again for nothing: a claim that comes back empty costs a statement, once a mail.
                    drained = drained and not self._wake.is_set()
        except BaseException:  # stopping (or the database went away): the mails not sent are due again at once
            if on_way:
                await asyncio.shield(self._release(list(on_way), self._clock()))
                structlog.get_logger().info("stopping: unsent mails released", mail_ids=[str(m) for m in on_way])
            raise
        return tried

    async def _claim(self, limit: int, held: list[UUID]) -> list[SpooledMail]:
        self._wake.clear()  # what was queued before this claim, it sees; a wake from now on asks for another
        now = self._clock()
        async with self._alone() as store:
            return await store.claim_due(now, now + self._lease, limit, held)

    @contextlib.asynccontextmanager
    async def _leases_renewed(self, on_way: dict[UUID, SpooledMail]) -> AsyncIterator[None]:
        """Keep the claims of the mails on their way, however long SMTP takes; a dead process stops renewing them."""

        async def renew() -> None:
            while True:
                await asyncio.sleep(self._lease.total_seconds() / 4)
                if mails := list(on_way.values()):
                    async with self._transaction() as store:
                        for mail in mails:
                            await store.renew_lease(mail, self._clock() + self._lease)

        renewing = asyncio.create_task(renew())
        try:
            yield
        finally:
            renewing.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await renewing

    async def _release(self, mail_ids: list[UUID], at: datetime) -> None:
        """Give the claims back, the mails due again ``at``, without counting an attempt."""
        async with self._alone() as store:
            await store.release(mail_ids, at)

    async def _attempt(self, mail: SpooledMail) -> None:
        log = structlog.get_logger().bind(mail_id=str(mail.mail_id), document_id=str(mail.document_id), kind=mail.kind)
        try:
            await self._smtp(await self._message(mail))
        except LinkGone as gone:
            await self._cancel(mail, f"not sent: {gone}")
            log.info("mail not sent: the signer makes no link for it any more", reason=str(gone))
        except PermanentFailure as exc:
            await self._give_up(mail, str(exc))
            MAILS_FAILED.labels("given_up").inc()
            log.warning("mail refused permanently", error=str(exc))
        except SignerNotAnswering as exc:
            await self._release([mail.mail_id], self._clock() + SIGNER_RETRY)
            log.info("mail waits: the signer does not answer for its link", error=str(exc), retry_in=SIGNER_RETRY.total_seconds())
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            await self._failed(mail, f"{exc.__class__.__name__}: {exc}", log)
        else:
            await self._sent(mail)
            MAILS_SENT.inc()
            log.info("mail sent", recipient=mail.recipient)

    async def _failed(self, mail: SpooledMail, error: str, log: structlog.typing.FilteringBoundLogger) -> None:
        attempts = mail.attempts + 1
        outcome = self._budget.after_failure(attempts, error)
        MAILS_FAILED.labels("given_up" if isinstance(outcome, GiveUp) else "retried").inc()
        if isinstance(outcome, GiveUp):
            await self._give_up(mail, outcome.reason)
            log.warning("mail given up", error=error, attempts=attempts)
            return
        async with self._alone() as store:
            await store.mark_retry(mail.mail_id, error, self._clock() + outcome.delay)
        log.info("mail delivery failed; will retry", error=error, attempts=attempts, retry_in=outcome.delay.total_seconds())

    async def _cancel(self, mail: SpooledMail, reason: str) -> None:
        async with self._alone() as store:
            await store.mark_cancelled(mail.mail_id, reason)

    async def _sent(self, mail: SpooledMail) -> None:
        """Mark the mail sent, with its notification.sent, in the same transaction as every other mail delivered while
        the previous such transaction ran (a group commit: none waits for more to come, none costs a commit alone)."""
        self._unmarked[mail.mail_id] = mail
        try:
            async with self._marking:
                if mail.mail_id not in self._unmarked:  # marked with the others in the transaction just committed
                    return
                marking, self._unmarked = self._unmarked, {}
                try:
                    await self._mark_sent(list(marking.values()))
                except BaseException:
                    self._unmarked.update((i, m) for i, m in marking.items() if i != mail.mail_id)  # each tries again
                    raise
        except BaseException:
            self._unmarked.pop(mail.mail_id, None)
            raise
        self._after_commit()

    async def _mark_sent(self, mails: list[SpooledMail]) -> None:
        told = [
            NotificationSent(
                correlation_id=document_id,
                causation_id=mail.mail_id,
                org=mail.org,
                kind=mail.kind,
                recipient=mail.recipient,
                subject=mail.content.subject,
                request_id=_signing_request(mail),
            )
            for mail in mails
            for document_id in mail.documents
        ]
        async with self._alone() as store:  # the marks and their notification.sent are one statement
            await store.mark_sent([mail.mail_id for mail in mails], self._clock(), told)

    async def _give_up(self, mail: SpooledMail, reason: str) -> None:
        now = self._clock()
        async with self._transaction() as store:
            await store.mark_failed(mail.mail_id, reason)
            for document_id in mail.documents:
                await store.publish(
                    NotificationFailed(
                        correlation_id=document_id,
                        causation_id=mail.mail_id,
                        org=mail.org,
                        kind=mail.kind,
                        recipient=mail.recipient,
                        reason=reason,
                        request_id=_signing_request(mail),
                    )
                )
            await store.keep_dead_letter(mail.mail_id, _dead_letter(mail, reason, now), _dead_letter_headers(mail, reason))
        self._after_commit()

    async def _link(self, mail: SpooledMail) -> str | None:
        if mail.link_kind == "signing" and mail.request_id is not None:
            return (await self._links.signing_link(mail.request_id, mail.mail_id)).url
        if mail.link_kind == "download" and mail.link_person is not None:
            return (await self._links.download_link(mail.document_id, mail.link_person, mail.mail_id)).url
        if mail.link_kind == "sign_in" and mail.request_id is not None:
            return (await self._links.sign_in_link(mail.request_id, mail.mail_id)).url
        return None

    async def _message(self, mail: SpooledMail) -> Message:
        content = mail.content
        if (link := await self._link(mail)) is not None:
            content = content.with_link(link)
        date = format_datetime(mail.created_at or self._clock())
        return compose(self._from, mail.recipient, content, date=date, message_id=message_id(mail.mail_id, self._from))


def _signing_request(mail: SpooledMail) -> UUID | None:
    """The request a signing-link mail is about (a sign-in mail's request_id is its sign-in attempt: not told)."""
    return mail.request_id if mail.link_kind == "signing" else None


def _dead_letter(mail: SpooledMail, reason: str, failed_at: datetime) -> bytes:
    """The mail as it would have gone out (without its link), kept where operators look for what could not be delivered."""
    intent = {
        "mail_id": str(mail.mail_id),
        "org": mail.org,
        "document_id": str(mail.document_id),
        "kind": mail.kind,
        "recipient": mail.recipient,
        "subject": mail.content.subject,
        "text": mail.content.text.replace(LINK, "(link withheld)"),
        "attempts": mail.attempts + 1,
        "reason": reason,
        "failed_at": failed_at.isoformat(),
    }
    return json.dumps(intent).encode()


def _dead_letter_headers(mail: SpooledMail, reason: str) -> dict[str, str]:
    return {"x-paraaf-reason": reason[:500], "x-paraaf-kind": mail.kind, "x-paraaf-recipient": mail.recipient}
