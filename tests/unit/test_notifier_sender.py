"""The mail sender on an in-memory store and a stand-in SMTP server: links made at send time, retries within the
budget, final refusals and what operators are left with."""

import asyncio
import contextlib
import json
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage, Message
from uuid import uuid4

import aiosmtplib
import pytest

from services.notifier.config import NotifierSettings
from services.notifier.links import SignerNotAnswering
from services.notifier.render import LINK, Mail
from services.notifier.sender import LEASE, SIGNER_RETRY, MailSender, PermanentFailure, SmtpDelivery, message_id
from services.notifier.store import SpooledMail
from shared.events import NotificationFailed, NotificationSent
from tests.support.fakes.notifier import FakeNotifierStore
from tests.support.notifier import FakeLinks

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
SETTINGS = NotifierSettings(mail_max_attempts=3, mail_retry_seconds=60, mail_retry_max_seconds=3600)


class Smtp:
    """Accepts every message, after raising the failures it was given, one per attempt."""

    def __init__(self, *failures: Exception) -> None:
        self.failures = list(failures)
        self.accepted: list[EmailMessage] = []

    async def __call__(self, message: Message) -> None:
        if self.failures:
            raise self.failures.pop(0)
        self.accepted.append(as_received(message))


def as_received(message: Message) -> EmailMessage:
    """The message as the server's side reads it."""
    received = message_from_bytes(message.as_bytes(), policy=policy.default)
    assert isinstance(received, EmailMessage)
    return received


def link_mail(**changes: object) -> SpooledMail:
    fields = dict(
        mail_id=uuid4(),
        org="default",
        document_id=uuid4(),
        kind="signature_request",
        recipient="ann@x.be",
        content=Mail("Ter ondertekening", f"Open {LINK}", f'<a href="{LINK}">open</a>'),
        request_id=uuid4(),
        link_kind="signing",
    )
    return SpooledMail(**{**fields, **changes})  # type: ignore[arg-type]


async def sender_with(mail: SpooledMail, smtp: Smtp, links: FakeLinks | None = None) -> tuple[MailSender, FakeNotifierStore]:
    store = FakeNotifierStore()
    await store.queue_mail(mail, NOW)
    sender = MailSender(
        store.transaction, SETTINGS, clock=lambda: NOW, after_commit=lambda: None, links=links or FakeLinks(), smtp=smtp
    )
    return sender, store


async def test_a_mail_goes_out_with_the_link_made_as_it_is_sent() -> None:
    """The placeholder is replaced by the signer's link; the mail is marked sent and notification.sent is published."""
    mail, smtp = link_mail(), Smtp()
    sender, store = await sender_with(mail, smtp)
    assert await sender.send_due() == 1
    [message] = smtp.accepted
    assert "http://signer.test/s/token0001" in message.get_body(("plain",)).get_content()
    assert message["Auto-Submitted"] == "auto-generated" and str(mail.mail_id) in message["Message-ID"]
    assert (await store.mail(mail.mail_id)).status == "sent"
    [sent] = store.sent(NotificationSent)
    assert (sent.correlation_id, sent.recipient, sent.kind) == (mail.document_id, "ann@x.be", "signature_request")


async def test_a_notice_about_several_documents_is_told_in_each_document_s_trail() -> None:
    """A mail concerning two documents publishes notification.sent for each."""
    documents = (uuid4(), uuid4())
    sender, store = await sender_with(link_mail(related_documents=documents, link_kind=None, request_id=None), Smtp())
    await sender.send_due()
    assert [e.correlation_id for e in store.sent(NotificationSent)] == list(documents)


async def test_a_transient_failure_is_retried_later() -> None:
    """A 421 answer counts the attempt and makes the mail due again a minute later; nothing is published."""
    mail = link_mail()
    sender, store = await sender_with(mail, Smtp(aiosmtplib.SMTPResponseException(421, "busy")))
    await sender.send_due()
    kept = await store.mail(mail.mail_id)
    assert (kept.status, kept.attempts, kept.next_attempt_at) == ("pending", 1, NOW + timedelta(seconds=60))
    assert store.published == []


async def test_a_mail_that_keeps_failing_is_given_up_after_the_budget_and_kept_for_operators() -> None:
    """The third failure of three allowed fails the mail, publishes notification.failed and keeps it, link withheld, for operators."""
    mail, now = link_mail(), [NOW]
    store = FakeNotifierStore()
    await store.queue_mail(mail, NOW)
    smtp = Smtp(*(OSError("connection refused") for _ in range(3)))
    sender = MailSender(
        store.transaction, SETTINGS, clock=lambda: now[0], after_commit=lambda: None, links=FakeLinks(), smtp=smtp
    )
    for _ in range(3):
        assert await sender.send_due() == 1
        now[0] += timedelta(hours=1)
    assert (await store.mail(mail.mail_id)).status == "failed"
    [failed] = store.sent(NotificationFailed)
    assert failed.reason == "gave up after 3 attempts; last error OSError: connection refused"
    [(mail_id, body, headers)] = store.dead_letters
    intent = json.loads(body)
    assert mail_id == mail.mail_id and intent["text"] == "Open (link withheld)" and intent["attempts"] == 3
    assert headers["x-paraaf-kind"] == "signature_request" and headers["x-paraaf-recipient"] == "ann@x.be"


async def test_a_final_refusal_fails_the_mail_at_once() -> None:
    """A permanent refusal is not retried: the mail fails on its first attempt."""
    mail = link_mail()
    sender, store = await sender_with(mail, Smtp(PermanentFailure("SMTP 550: no such user")))
    await sender.send_due()
    assert ((await store.mail(mail.mail_id)).status, store.sent(NotificationFailed)[0].reason) == (
        "failed",
        "SMTP 550: no such user",
    )


async def test_a_mail_whose_request_closed_is_cancelled_unsent() -> None:
    """When the signer makes no link any more, the mail is cancelled, nothing is sent and nothing published."""
    mail, smtp, links = link_mail(), Smtp(), FakeLinks()
    links.closed.add(mail.request_id)
    sender, store = await sender_with(mail, smtp, links)
    await sender.send_due()
    assert (await store.mail(mail.mail_id)).status == "cancelled"
    assert smtp.accepted == [] and store.published == []


def sign_in_mail() -> SpooledMail:
    attempt_id = uuid4()
    return link_mail(
        document_id=attempt_id,
        kind="sign_in",
        content=Mail("Sign in to Paraaf", f"Sign in: {LINK}", f'<a href="{LINK}">Sign in</a>'),
        request_id=attempt_id,
        link_kind="sign_in",
    )


async def test_a_sign_in_mail_goes_out_with_the_attempt_s_link() -> None:
    """The sender asks the signer for the sign-in attempt's link, for this mail, and sends the mail with it."""
    mail, smtp, links = sign_in_mail(), Smtp(), FakeLinks()
    sender, store = await sender_with(mail, smtp, links)
    await sender.send_due()
    assert links.asked == [(f"sign_in:{mail.request_id}", mail.mail_id)]
    [message] = smtp.accepted
    assert "http://signer.test/a/token0001" in message.get_body(("plain",)).get_content()
    assert LINK not in message.get_body(("html",)).get_content()
    assert (await store.mail(mail.mail_id)).status == "sent"


async def test_a_sign_in_mail_whose_attempt_the_signer_no_longer_knows_is_dropped() -> None:
    """When the signer answers 410 (the attempt is unknown, used or expired), the mail is cancelled unsent and nothing is
    published."""
    mail, smtp, links = sign_in_mail(), Smtp(), FakeLinks()
    links.closed.add(mail.request_id)
    sender, store = await sender_with(mail, smtp, links)
    await sender.send_due()
    assert (await store.mail(mail.mail_id)).status == "cancelled"
    assert smtp.accepted == [] and store.published == []


class _Refusing(SmtpDelivery):
    def __init__(self, error: Exception) -> None:
        super().__init__(SETTINGS)
        self.error = error

    async def _send(self, message: EmailMessage) -> None:
        raise self.error


@pytest.mark.parametrize(
    ("error", "final"),
    [
        (aiosmtplib.SMTPRecipientsRefused([aiosmtplib.SMTPRecipientRefused(550, "no such user", "a@x.be")]), True),
        (aiosmtplib.SMTPRecipientsRefused([aiosmtplib.SMTPRecipientRefused(450, "mailbox busy", "a@x.be")]), False),
        (aiosmtplib.SMTPDataError(554, "message refused"), True),
        (aiosmtplib.SMTPDataError(451, "try later"), False),
        (aiosmtplib.SMTPSenderRefused(550, "sender refused", "paraaf@localhost"), False),
    ],
)
async def test_only_a_5xx_refusal_of_the_recipient_or_the_message_is_final(error: Exception, final: bool) -> None:
    """A 5xx for the recipient or the message is final; 4xx answers and a refused sender address may pass later."""
    with pytest.raises(PermanentFailure if final else type(error)):
        await _Refusing(error)(EmailMessage())


class HangingSmtp:
    """A server that takes the message and never answers, until the sender is stopped."""

    def __init__(self) -> None:
        self.called = asyncio.Event()

    async def __call__(self, message: Message) -> None:
        self.called.set()
        await asyncio.Event().wait()


async def test_a_stop_mid_send_gives_back_the_claims_of_the_mails_not_sent() -> None:
    """Stopped while sending the first of two due mails, the sender makes the one it claimed due again now, not at the
    lease's end; the other was never claimed (one mail is claimed at a time)."""
    first, second = link_mail(), link_mail()
    smtp = HangingSmtp()
    sender, store = await sender_with(first, smtp)  # type: ignore[arg-type]
    await store.queue_mail(second, NOW)
    sending = asyncio.create_task(sender.send_due())
    await asyncio.wait_for(smtp.called.wait(), timeout=5)
    assert (await store.mail(first.mail_id)).next_attempt_at == NOW + LEASE  # claimed: leased
    assert (await store.mail(second.mail_id)).next_attempt_at == NOW
    sending.cancel()
    with pytest.raises(asyncio.CancelledError):
        await sending
    assert [(await store.mail(m.mail_id)).next_attempt_at for m in (first, second)] == [NOW, NOW]


async def test_a_mail_on_its_way_keeps_its_claim_however_long_smtp_takes() -> None:
    """While a slow server holds the mail, the sender renews its short lease, so no other notifier takes it; a dead
    sender stops renewing, and the mail is due again within one lease."""
    mail, smtp, clock = link_mail(), HangingSmtp(), [NOW]
    store = FakeNotifierStore()
    await store.queue_mail(mail, NOW)
    sender = MailSender(
        store.transaction,
        SETTINGS,
        clock=lambda: clock[0],
        after_commit=lambda: None,
        links=FakeLinks(),
        smtp=smtp,
        lease=timedelta(seconds=0.2),
    )
    sending = asyncio.create_task(sender.send_due())
    await asyncio.wait_for(smtp.called.wait(), timeout=5)
    clock[0] = NOW + timedelta(minutes=1)
    await asyncio.sleep(0.2)
    assert (await store.mail(mail.mail_id)).next_attempt_at == NOW + timedelta(minutes=1, seconds=0.2)
    sending.cancel()
    with pytest.raises(asyncio.CancelledError):
        await sending


class _SignerRestarting(FakeLinks):
    """The signer's link API that does not answer at all, as while the signer restarts."""

    async def signing_link(self, request_id, mail_id):  # type: ignore[no-untyped-def]
        raise SignerNotAnswering("the signer's link API does not answer: ConnectError('All connection attempts failed')")


async def test_a_mail_whose_link_the_signer_cannot_make_yet_waits_seconds_and_counts_no_attempt() -> None:
    """While the signer restarts, the mail is due again in SIGNER_RETRY (seconds, not the SMTP back-off of a minute),
    its retry budget untouched and no notification.failed published."""
    mail = link_mail()
    sender, store = await sender_with(mail, Smtp(), _SignerRestarting())  # type: ignore[arg-type]
    assert await sender.send_due() == 1
    waiting = await store.mail(mail.mail_id)
    assert (waiting.status, waiting.attempts, waiting.next_attempt_at) == ("pending", 0, NOW + SIGNER_RETRY)
    assert store.sent(NotificationFailed) == []


def test_every_attempt_of_a_mail_carries_the_same_message_id() -> None:
    """A mail sent again after the notifier died mid-send has the Message-ID of the first copy, so a mail client
    shows one message; it names the sending domain."""
    mail_id = uuid4()
    first, again = message_id(mail_id, "Paraaf <paraaf@stad.be>"), message_id(mail_id, "Paraaf <paraaf@stad.be>")
    assert first == again == f"<{mail_id}@stad.be>"
    assert message_id(uuid4(), "Paraaf <paraaf@stad.be>") != first


class MeetingSmtp:
    """Accepts a message only once ``together`` messages are being handed over at the same moment."""

    def __init__(self, together: int) -> None:
        self.together = together
        self.arrived = 0
        self.met = asyncio.Event()
        self.accepted: list[EmailMessage] = []

    async def __call__(self, message: Message) -> None:
        self.arrived += 1
        if self.arrived == self.together:
            self.met.set()
        await self.met.wait()
        self.accepted.append(as_received(message))


async def test_several_due_mails_are_on_their_way_at_once() -> None:
    """With ``parallel`` 3, three due mails are handed to the SMTP server at the same time (one at a time, the first
    would wait for the other two for ever) and each is marked sent."""
    mails, smtp = [link_mail() for _ in range(3)], MeetingSmtp(3)
    sender, store = await sender_with(mails[0], smtp)  # type: ignore[arg-type]
    for mail in mails[1:]:
        await store.queue_mail(mail, NOW)
    sender = MailSender(
        store.transaction, SETTINGS, clock=lambda: NOW, after_commit=lambda: None, links=FakeLinks(), smtp=smtp, parallel=3
    )
    assert await asyncio.wait_for(sender.send_due(), timeout=5) == 3
    assert len(smtp.accepted) == 3
    assert {(await store.mail(m.mail_id)).status for m in mails} == {"sent"}


class CountingStore(FakeNotifierStore):
    """The in-memory store that notes, per transaction, the mails it claimed and the mails it marked sent; each
    commit takes a moment, as a database's does."""

    def __init__(self) -> None:
        super().__init__()
        self.claims: list[int] = []
        self.marks: list[int] = []
        self._marked = 0

    async def claim_due(self, now, lease_until, limit, held=()):  # type: ignore[no-untyped-def]
        claimed = await super().claim_due(now, lease_until, limit, held)
        if claimed:
            self.claims.append(len(claimed))
        return claimed

    async def mark_sent(self, mail_ids, now, told=()):  # type: ignore[no-untyped-def]
        self._marked += len(mail_ids)
        await super().mark_sent(mail_ids, now, told)

    @contextlib.asynccontextmanager
    async def transaction(self):  # type: ignore[no-untyped-def]
        self._marked = 0
        yield self
        if self._marked:
            self.marks.append(self._marked)
        await asyncio.sleep(0.01)  # the commit


async def test_the_mails_for_every_free_sender_are_claimed_in_one_transaction() -> None:
    """With ``parallel`` 4 and five due mails, the first four are claimed together, the fifth when a sender comes free;
    each goes out once."""
    store, smtp = CountingStore(), MeetingSmtp(4)
    mails = [link_mail() for _ in range(5)]
    for mail in mails:
        await store.queue_mail(mail, NOW)
    sender = MailSender(
        store.transaction, SETTINGS, clock=lambda: NOW, after_commit=lambda: None, links=FakeLinks(), smtp=smtp, parallel=4
    )
    assert await asyncio.wait_for(sender.send_due(), timeout=5) == 5
    assert store.claims == [4, 1]
    assert sorted(m["Message-ID"] for m in smtp.accepted) == sorted(message_id(m.mail_id, SETTINGS.smtp_from) for m in mails)


async def test_mails_delivered_while_others_are_being_marked_are_marked_together_and_each_once() -> None:
    """Three mails delivered at the same moment: the first is marked sent at once, the two delivered while its
    transaction commits share the next one; each is sent, marked and told (notification.sent) once."""
    store, smtp, woken = CountingStore(), MeetingSmtp(3), []
    mails = [link_mail() for _ in range(3)]
    for mail in mails:
        await store.queue_mail(mail, NOW)
    sender = MailSender(
        store.transaction,
        SETTINGS,
        clock=lambda: NOW,
        after_commit=lambda: woken.append(1),
        links=FakeLinks(),
        smtp=smtp,
        parallel=3,
    )
    assert await asyncio.wait_for(sender.send_due(), timeout=5) == 3
    assert store.marks == [1, 2]
    assert {(await store.mail(m.mail_id)).status for m in mails} == {"sent"}
    assert sorted(e.causation_id for e in store.sent(NotificationSent)) == sorted(m.mail_id for m in mails)
    assert len(smtp.accepted) == 3 and len(woken) == 2


async def test_a_stop_gives_back_every_claimed_mail_not_yet_sent() -> None:
    """Stopped while three mails claimed together are on their way, the sender makes all three due again now."""
    store, smtp = CountingStore(), HangingSmtp()
    mails = [link_mail() for _ in range(3)]
    for mail in mails:
        await store.queue_mail(mail, NOW)
    sender = MailSender(
        store.transaction, SETTINGS, clock=lambda: NOW, after_commit=lambda: None, links=FakeLinks(), smtp=smtp, parallel=3
    )
    sending = asyncio.create_task(sender.send_due())
    await asyncio.wait_for(smtp.called.wait(), timeout=5)
    await asyncio.sleep(0.05)
    assert [(await store.mail(m.mail_id)).next_attempt_at for m in mails] == [NOW + LEASE] * 3
    sending.cancel()
    with pytest.raises(asyncio.CancelledError):
        await sending
    assert store.claims == [3]
    assert [(await store.mail(m.mail_id)).next_attempt_at for m in mails] == [NOW] * 3


class _HoldingFirst:
    """Holds the first mail handed to it until ``release``; accepts every other at once, and then moves the clock a
    day on (as tests/support/year.py does between its waves of signers)."""

    def __init__(self, clock: list[datetime]) -> None:
        self.accepted: list[str] = []
        self.release = asyncio.Event()
        self._clock = clock
        self._first: str | None = None

    async def __call__(self, message: Message) -> None:
        if self._first is None:
            self._first = message["Message-ID"]
            await self.release.wait()
        else:
            self._clock[0] = NOW + timedelta(days=1)
        self.accepted.append(message["Message-ID"])


class _ReleasingOnClaim(FakeNotifierStore):
    """Releases the held mail once a claim has run after the clock moved, so the test knows that claim happened."""

    def __init__(self, clock: list[datetime], smtp: _HoldingFirst) -> None:
        super().__init__()
        self._clock, self._smtp = clock, smtp

    async def claim_due(self, now, lease_until, limit, held=()):  # type: ignore[no-untyped-def]
        claimed = await super().claim_due(now, lease_until, limit, held)
        if now > NOW:
            self._smtp.release.set()
        return claimed


async def test_a_mail_on_its_way_is_not_claimed_again_by_its_own_sender_when_the_clock_passes_its_lease() -> None:
    """Two mails on their way; the second is delivered and the clock jumps a day, past the first's lease, before a
    sender claims again: the first, still on its way, is not taken a second time (a second copy would carry a new
    link that revokes the one in the first copy). Each mail reaches the server once."""
    clock: list[datetime] = [NOW]
    smtp = _HoldingFirst(clock)
    store = _ReleasingOnClaim(clock, smtp)
    mails = [link_mail(), link_mail()]
    for mail in mails:
        await store.queue_mail(mail, NOW)
    sender = MailSender(
        store.transaction, SETTINGS, clock=lambda: clock[0], after_commit=lambda: None, links=FakeLinks(), smtp=smtp, parallel=2
    )
    await asyncio.wait_for(sender.send_due(), timeout=5)
    assert sorted(smtp.accepted) == sorted(message_id(m.mail_id, SETTINGS.smtp_from) for m in mails)
    assert {(await store.mail(m.mail_id)).status for m in mails} == {"sent"}


class _AskedStore(FakeNotifierStore):
    """The in-memory store that counts every claim, those that found nothing too."""

    def __init__(self) -> None:
        super().__init__()
        self.asked = 0

    async def claim_due(self, now, lease_until, limit, held=()):  # type: ignore[no-untyped-def]
        self.asked += 1
        return await super().claim_due(now, lease_until, limit, held)


class _QueuingWhileSending:
    """Accepts every message; while the first is on its way, a mail is queued and the sender woken (as a consumed
    command does), unless told not to."""

    def __init__(self, store: FakeNotifierStore, queue: bool) -> None:
        self.store, self.queue = store, queue
        self.sender: MailSender | None = None
        self.accepted: list[Message] = []

    async def __call__(self, message: Message) -> None:
        if self.queue and not self.accepted:
            await self.store.queue_mail(link_mail(), NOW)
            assert self.sender is not None
            self.sender.wake()
        self.accepted.append(message)


@pytest.mark.parametrize("queued_meanwhile", [True, False])
async def test_a_sender_that_comes_free_asks_for_more_mail_only_when_some_was_queued_meanwhile(queued_meanwhile: bool) -> None:
    """A round whose claim found fewer mails than it had senders free asks again when a sender comes free only after a
    wake (a mail queued meanwhile, which then goes out in the same round): never a claim that finds nothing."""
    store = _AskedStore()
    smtp = _QueuingWhileSending(store, queued_meanwhile)
    await store.queue_mail(link_mail(), NOW)
    sender = MailSender(
        store.transaction, SETTINGS, clock=lambda: NOW, after_commit=lambda: None, links=FakeLinks(), smtp=smtp, parallel=2
    )
    smtp.sender = sender
    assert await asyncio.wait_for(sender.send_due(), timeout=5) == (2 if queued_meanwhile else 1)
    assert len(smtp.accepted) == store.asked == (2 if queued_meanwhile else 1)
