"""The notifier alone, in this process, on real RabbitMQ, PostgreSQL and SMTP:
mail once per intent, reminders on working days, retries, refusals kept for
operators, absence notices and operator alerts. The test plays the other
services by publishing their commands and events as they would (their own
broker users), and the signer's link API by :class:`FakeLinks`."""

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import aio_pika
import asyncpg
import pytest
from pydantic import BaseModel

from services.notifier.sender import MailSender
from shared.contract import SendSigningLink, SendSignInLink
from shared.events import (
    DocumentDeclined,
    DocumentWithdrawn,
    PersonRef,
    RoutingFailed,
    SignatureCancelled,
    SignatureReassigned,
    Signed,
)
from shared.topology import COMMANDS, EVENTS, TOPOLOGY
from tests.support.bus import publish_as
from tests.support.listener import Listener
from tests.support.net import free_port
from tests.support.notifier import (
    ANN,
    BRUSSELS,
    ELEN,
    MONDAY,
    FakeClock,
    FakeLinks,
    link_command,
    notifier_settings,
    running_notifier,
)
from tests.support.smtp import SmtpServer
from tests.support.waiting import eventually

MARC = PersonRef(id="marc.maes", name="Marc Maes", email="marc.maes@example.org", language="fr", title="schepen")
BART = PersonRef(id="bart.baert", name="Bart Baert", email="bart.baert@example.org", language="nl", title="burgemeester")
SOFIE = PersonRef(id="sofie.smet", name="Sofie Smet", email="sofie.smet@example.org", language="nl")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(MONDAY)


@pytest.fixture
async def settings(provision, smtp_server: SmtpServer):
    admin = await provision()
    return notifier_settings(admin.database_url, admin.amqp_url, smtp_server, free_port(), secrets_dir=str(admin.secrets_dir))


@pytest.fixture
def links() -> FakeLinks:
    return FakeLinks()


@pytest.fixture
async def notifier(settings, clock: FakeClock, links: FakeLinks) -> AsyncIterator[None]:
    async with running_notifier(settings, clock, links):
        yield


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(database_url)
    yield conn
    await conn.close()


async def publish(settings, *messages: BaseModel) -> None:
    """Publish as the services that own them do: their own broker user, persistent, on their exchange."""
    for message in messages:
        await publish_as(settings, TOPOLOGY.owners(message.routing_key)[0], message)  # type: ignore[attr-defined]



def signed(command: SendSigningLink) -> Signed:
    return Signed(
        correlation_id=command.correlation_id,
        request_id=command.request_id,
        step=1,
        action="sign",
        signer=command.recipient,
        signed_at=datetime.now(UTC),
        pdf_sha256="0" * 64,
        revision=1,
    )


async def quiet(seconds: float = 1.0) -> None:
    """Give the scheduler (ticking every 0.1 s) time to act, before asserting it did not."""
    await asyncio.sleep(seconds)


async def test_a_command_delivered_twice_sends_one_mail_with_a_link_made_as_it_was_sent(
    notifier, settings, amqp_url: str, smtp_server: SmtpServer, clock: FakeClock, db: asyncpg.Connection, links: FakeLinks
) -> None:
    """The same SendSigningLink twice: one mail, carrying the link the signer made when it went out; one notification.sent; no link in the database."""
    command = link_command(clock)
    async with Listener(amqp_url, EVENTS.name, ["notification.*"]) as events:
        await publish(settings, command, command)
        [mail] = await smtp_server.wait_for_mail(ANN.email)
        await events.wait("notification.sent")
        await quiet(0.5)
    assert mail.subject == "Ter ondertekening: Collegebesluit 42"
    [(asked, mail_id)] = links.asked
    assert asked == f"signing:{command.request_id}" and mail_id == command.command_id
    assert mail.signing_link.startswith("http://signer.test/s/token0001") and mail.signing_link in mail.html
    assert "Graag uiterlijk op 09-03-2026" in mail.text  # 5 working days after Monday 2 March
    assert len(smtp_server.received) == 1
    [sent] = events.bodies("notification.sent")
    assert (sent["recipient"], sent["kind"], sent["correlation_id"]) == (
        ANN.email,
        "signature_request",
        str(command.correlation_id),
    )
    leftovers = await db.fetch("SELECT text_body, html_body FROM notifier.mails")
    assert not any("signer.test" in (r["text_body"] or "") + (r["html_body"] or "") for r in leftovers)


async def test_a_sign_in_command_delivered_twice_sends_one_mail_with_the_attempt_s_link(
    notifier, settings, amqp_url: str, smtp_server: SmtpServer, clock: FakeClock, links: FakeLinks
) -> None:
    """The portal's SendSignInLink twice: one mail in the person's language, carrying the link the signer made for the
    sign-in attempt when it went out; notification.sent names the attempt."""
    command = SendSignInLink(correlation_id=uuid4(), recipient=MARC, expires_at=clock() + timedelta(minutes=15))
    async with Listener(amqp_url, EVENTS.name, ["notification.*"]) as events:
        await publish(settings, command, command)
        [mail] = await smtp_server.wait_for_mail(MARC.email)
        await events.wait("notification.sent")
        await quiet(0.5)
    assert mail.subject == "Connexion à Paraaf" and len(smtp_server.received) == 1
    assert links.asked == [(f"sign_in:{command.correlation_id}", command.command_id)]
    assert "http://signer.test/a/token0001" in mail.text and 'href="http://signer.test/a/token0001' in mail.html
    [sent] = events.bodies("notification.sent")
    assert (sent["kind"], sent["correlation_id"]) == ("sign_in", str(command.correlation_id))


async def test_reminders_are_asked_of_the_signer_on_working_days_up_to_the_maximum(
    notifier, settings, amqp_url: str, smtp_server: SmtpServer, clock: FakeClock
) -> None:
    """Requested Monday 10:00: reminders asked Thursday, the next Monday and Wednesday, then no more."""
    command = link_command(clock)
    async with Listener(amqp_url, COMMANDS.name, ["signer.reissue-link"]) as signer:
        await publish(settings, command)
        await smtp_server.wait_for_mail(ANN.email)
        clock.move_to(datetime(2026, 3, 5, 9, 59, tzinfo=BRUSSELS))  # Thursday, a minute early
        await quiet()
        assert signer.received == []
        clock.move_to(datetime(2026, 3, 5, 10, 1, tzinfo=BRUSSELS))
        await signer.wait("signer.reissue-link", reminder=1)
        clock.move_to(datetime(2026, 3, 9, 10, 2, tzinfo=BRUSSELS))  # Monday: 2 working days on
        await signer.wait("signer.reissue-link", reminder=2)
        clock.move_to(datetime(2026, 3, 11, 10, 3, tzinfo=BRUSSELS))  # Wednesday
        await signer.wait("signer.reissue-link", reminder=3)
        clock.move_to(datetime(2026, 4, 30, 10, 0, tzinfo=BRUSSELS))
        await quiet()
    asked = [body["reminder"] for _, body in signer.received]
    assert asked == [1, 2, 3]
    assert {body["request_id"] for _, body in signer.received} == {str(command.request_id)}
    assert len({body["command_id"] for _, body in signer.received}) == 3


async def test_no_reminder_for_a_request_that_was_signed_moved_or_cancelled_or_whose_document_ended(
    notifier, settings, amqp_url: str, smtp_server: SmtpServer, clock: FakeClock
) -> None:
    """Of five requests, only the one still open is reminded after 3 working days."""
    commands = [link_command(clock, title=f"Besluit {n}") for n in range(5)]
    done_signing, moved, cancelled, withdrawn, still_open = commands
    async with Listener(amqp_url, COMMANDS.name, ["signer.reissue-link"]) as signer:
        await publish(settings, *commands)
        await smtp_server.wait_for_mail(ANN.email, count=5)
        await publish(
            settings,
            signed(done_signing),
            SignatureReassigned(
                correlation_id=moved.correlation_id,
                request_id=moved.request_id,
                new_request_id=uuid4(),
                from_person=ANN,
                to_person=SOFIE,
                reason="absent",
                title="Besluit 1",
            ),
            SignatureCancelled(correlation_id=cancelled.correlation_id, request_id=cancelled.request_id, reason="any"),
            DocumentWithdrawn(correlation_id=withdrawn.correlation_id, withdrawn_by="elen.elaut", reason="wrong file"),
        )
        await quiet(1.5)  # the events are consumed
        clock.advance(timedelta(days=3, minutes=1))  # Thursday
        await signer.wait("signer.reissue-link", reminder=1)
        await quiet()
    assert [body["request_id"] for _, body in signer.received] == [str(still_open.request_id)]


async def test_a_request_closed_before_its_mail_command_arrives_gets_no_mail(
    notifier, settings, amqp_url: str, smtp_server: SmtpServer, clock: FakeClock, db: asyncpg.Connection
) -> None:
    """A signing link for a request already signed is not mailed and not reminded."""
    late, other = link_command(clock), link_command(clock, SOFIE)
    await publish(settings, signed(late))
    for _ in range(100):
        if await db.fetchval("SELECT status FROM notifier.reminders WHERE request_id = $1", late.request_id):
            break
        await asyncio.sleep(0.05)
    await publish(settings, late, other)
    await smtp_server.wait_for_mail(SOFIE.email)
    await quiet(0.5)
    assert [m.to for m in smtp_server.received] == [(SOFIE.email,)]


async def test_only_a_message_that_queues_a_mail_wakes_the_sender(
    notifier, settings, smtp_server: SmtpServer, clock: FakeClock, db: asyncpg.Connection, monkeypatch
) -> None:
    """A signature queues no mail and does not send the sender looking for one; a request's command does (the first
    while the directory is in doubt, the next as its schedule opens), and its mail goes out."""
    woken: list[int] = []
    wake = MailSender.wake
    monkeypatch.setattr(MailSender, "wake", lambda self: (woken.append(1), wake(self))[1])
    await publish(settings, signed(link_command(clock)))
    await eventually(lambda: db.fetchval("SELECT true FROM notifier.reminders WHERE status = 'closed'"), "the signature handled")
    assert woken == []
    await publish(settings, link_command(clock))
    await smtp_server.wait_for_mail(ANN.email)
    assert len(woken) == 1
    await publish(settings, link_command(clock, SOFIE))
    await smtp_server.wait_for_mail(SOFIE.email)
    assert len(woken) == 2


async def test_the_reminder_schedule_survives_a_restart(
    settings, amqp_url: str, smtp_server: SmtpServer, clock: FakeClock
) -> None:
    """A request made before the notifier stopped is reminded by the notifier started after it."""
    command = link_command(clock)
    async with running_notifier(settings, clock, FakeLinks()):
        await publish(settings, command)
        await smtp_server.wait_for_mail(ANN.email)
    clock.advance(timedelta(days=3, minutes=1))
    async with (
        Listener(amqp_url, COMMANDS.name, ["signer.reissue-link"]) as signer,
        running_notifier(settings, clock, FakeLinks()),
    ):
        [asked] = await signer.wait("signer.reissue-link")
    assert (asked["request_id"], asked["reminder"]) == (str(command.request_id), 1)


async def test_a_mail_is_retried_while_the_server_answers_421_and_arrives_once(
    notifier, settings, amqp_url: str, smtp_server: SmtpServer, clock: FakeClock
) -> None:
    """Three 421 answers in a row delay the mail; the fourth attempt delivers it, and only once."""
    smtp_server.fail_next(3)
    async with Listener(amqp_url, EVENTS.name, ["notification.*"]) as events:
        await publish(settings, link_command(clock))
        await smtp_server.wait_for_mail(ANN.email)
        await events.wait("notification.sent")
        await quiet(0.5)
    assert smtp_server.attempts == 4
    assert len(smtp_server.received) == 1
    assert [key for key, _ in events.received] == ["notification.sent"]


async def _dead_letters(amqp_url: str) -> list[aio_pika.abc.AbstractIncomingMessage]:
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue("notifier.events.dlq", passive=True)
        kept = []
        while (message := await queue.get(fail=False, no_ack=True)) is not None:
            kept.append(message)
        return kept


async def test_a_refused_recipient_fails_at_once_and_the_mail_is_kept_for_operators(
    notifier, settings, amqp_url: str, smtp_server: SmtpServer, clock: FakeClock
) -> None:
    """A 550 for the recipient publishes notification.failed and leaves the whole mail in notifier.events.dlq."""
    smtp_server.refuse(MARC.email)
    command = link_command(clock, MARC)
    async with Listener(amqp_url, EVENTS.name, ["notification.*"]) as events:
        await publish(settings, command)
        [failed] = await events.wait("notification.failed")
        for _ in range(100):
            if kept := await _dead_letters(amqp_url):
                break
            await asyncio.sleep(0.05)
    assert failed["recipient"] == MARC.email and "550" in failed["reason"]
    assert failed["correlation_id"] == str(command.correlation_id)
    assert smtp_server.received == []
    [message] = kept
    intent = json.loads(message.body)
    assert (intent["recipient"], intent["subject"]) == (MARC.email, "À signer : Collegebesluit 42")
    assert "(link withheld)" in intent["text"] and "signer.test" not in message.body.decode()
    assert message.headers["x-paraaf-kind"] == "signature_request"


async def test_a_mail_that_keeps_failing_is_given_up_after_the_retry_budget(
    settings, amqp_url: str, smtp_server: SmtpServer, clock: FakeClock
) -> None:
    """With 3 attempts allowed and a server that stays unavailable, the mail fails after exactly 3 tries."""
    smtp_server.fail_next(1000)
    settings = settings.model_copy(update={"mail_max_attempts": 3})
    async with running_notifier(settings, clock, FakeLinks()), Listener(amqp_url, EVENTS.name, ["notification.*"]) as events:
        await publish(settings, link_command(clock))
        [failed] = await events.wait("notification.failed")
        await quiet(0.5)
    assert failed["reason"].startswith("gave up after 3 attempts")
    assert smtp_server.attempts == 3


async def test_the_moves_of_one_absence_are_told_in_one_notice(
    notifier, settings, amqp_url: str, smtp_server: SmtpServer, clock: FakeClock
) -> None:
    """Three requests moved from Bart become one notice listing all three; Marc's move is his own notice, in French."""
    moves = [
        SignatureReassigned(
            correlation_id=uuid4(),
            request_id=uuid4(),
            new_request_id=uuid4(),
            from_person=person,
            to_person=SOFIE,
            reason="absent",
            title=title,
        )
        for person, title in [(BART, "Besluit A"), (BART, "Besluit B"), (MARC, "Besluit C"), (BART, "Besluit D")]
    ]
    async with Listener(amqp_url, EVENTS.name, ["notification.sent"]) as events:
        await publish(settings, *moves)
        [bart] = await smtp_server.wait_for_mail(BART.email)
        [marc] = await smtp_server.wait_for_mail(MARC.email)
        await events.wait("notification.sent", count=4)
        await quiet(1.5)  # past another gathering window: nothing more comes
    assert bart.subject == "Tijdens uw afwezigheid overgedragen: 3 documenten"
    assert all(f'"Besluit {x}" naar Sofie Smet' in bart.text for x in "ABD")
    assert marc.subject == "Transmis pendant votre absence : 1 document"
    assert len(smtp_server.received) == 2
    # The audit trail of each moved document shows its absent signer was told.
    told = {(body["correlation_id"], body["recipient"]) for body in events.bodies("notification.sent")}
    assert told == {(str(m.correlation_id), m.from_person.email) for m in moves}


@pytest.mark.parametrize(
    ("language", "subject"),
    [
        ("nl", "Paraaf: geen vervanger beschikbaar voor Bart Baert"),
        ("fr", "Paraaf : aucun remplaçant disponible pour Bart Baert"),
        ("en", "Paraaf: no substitute available for Bart Baert"),
    ],
)
async def test_a_routing_alert_reaches_every_operator_in_their_language(
    settings, amqp_url: str, smtp_server: SmtpServer, clock: FakeClock, language: str, subject: str
) -> None:
    """routing.unresolved mails each address of PARAAF_OPERATOR_EMAILS, in PARAAF_OPERATOR_LANGUAGE."""
    settings = settings.model_copy(update={"operator_emails": "ops@example.org, Duty@Example.org", "operator_language": language})
    alert = RoutingFailed(correlation_id=uuid4(), request_id=uuid4(), signer=BART, reason="no substitute available")
    async with running_notifier(settings, clock, FakeLinks()):
        await publish(settings, alert, alert)
        [ops] = await smtp_server.wait_for_mail("ops@example.org")
        [duty] = await smtp_server.wait_for_mail("duty@example.org")
        await quiet(0.5)
    assert ops.subject == duty.subject == subject
    assert str(alert.correlation_id) in ops.text and "no substitute available" in ops.text
    assert len(smtp_server.received) == 2


async def test_the_submitter_of_a_declined_document_is_told_who_declined_and_why(
    notifier, settings, amqp_url: str, smtp_server: SmtpServer, clock: FakeClock
) -> None:
    """document.declined mails the submitter, in their language, with the decliner and the reason."""
    declined = DocumentDeclined(
        correlation_id=uuid4(), declined_by=MARC, reason="Le montant est erroné", title="Besluit 7", submitted_by=ELEN
    )
    await publish(settings, declined)
    [mail] = await smtp_server.wait_for_mail(ELEN.email)
    assert mail.subject == "Declined: Besluit 7"
    assert "Marc Maes (schepen) declined" in mail.text and "Le montant est erroné" in mail.text


async def _silent_server() -> tuple[asyncio.Server, int]:
    """A TCP server that accepts connections and never says a word: an SMTP server that hangs."""

    async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()

    server = await asyncio.start_server(hang, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def test_a_hanging_smtp_server_does_not_hold_up_the_events(
    settings, amqp_url: str, smtp_server: SmtpServer, clock: FakeClock, db: asyncpg.Connection
) -> None:
    """While every SMTP attempt hangs for 5 s, requests and signatures are still taken in within a second or two."""
    server, port = await _silent_server()
    settings = settings.model_copy(update={"smtp_timeout_seconds": 5.0, "smtp_port": port})
    commands = [link_command(clock, title=f"Besluit {n}") for n in range(3)]
    async with server, running_notifier(settings, clock, FakeLinks()):
        await publish(settings, *commands)
        await asyncio.sleep(0.5)  # the sender is now stuck on the first mail
        started = asyncio.get_running_loop().time()
        await publish(settings, signed(commands[0]))
        while (
            await db.fetchval("SELECT status FROM notifier.reminders WHERE request_id = $1", commands[0].request_id) != "closed"
        ):
            assert asyncio.get_running_loop().time() - started < 2.5, "the signature waited for SMTP"
            await asyncio.sleep(0.05)
        queued = await db.fetchval("SELECT count(*) FROM notifier.mails")
    assert queued == 3
    assert smtp_server.received == []


async def test_a_mail_whose_request_closed_before_sending_goes_out_without_a_link_never(
    settings, amqp_url: str, smtp_server: SmtpServer, clock: FakeClock, db: asyncpg.Connection
) -> None:
    """When the signer makes no link (the request closed while the mail waited), the mail is not sent and says why."""
    links = FakeLinks()
    command = link_command(clock)
    links.closed.add(command.request_id)
    async with running_notifier(settings, clock, links), Listener(amqp_url, EVENTS.name, ["notification.*"]) as events:
        await publish(settings, command)
        for _ in range(100):
            status = await db.fetchval("SELECT status FROM notifier.mails WHERE mail_id = $1", command.command_id)
            if status == "cancelled":
                break
            await asyncio.sleep(0.05)
        await quiet(0.3)
    assert status == "cancelled"
    assert smtp_server.received == [] and events.received == []


class _SignerDown(FakeLinks):
    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    async def signing_link(self, request_id, mail_id):  # type: ignore[no-untyped-def]
        from services.notifier.links import LinkUnavailable

        if self.failures:
            self.failures -= 1
            raise LinkUnavailable("connection refused")
        return await super().signing_link(request_id, mail_id)


async def test_a_mail_waits_while_the_signer_cannot_be_asked_for_its_link(
    settings, amqp_url: str, smtp_server: SmtpServer, clock: FakeClock
) -> None:
    """The signer's link API down for two attempts: the mail is retried like an SMTP outage and arrives once, with a link."""
    links = _SignerDown(2)
    async with running_notifier(settings, clock, links):
        await publish(settings, link_command(clock))
        [mail] = await smtp_server.wait_for_mail(ANN.email)
        await quiet(0.5)
    assert mail.signing_link.startswith("http://signer.test/s/")
    assert len(smtp_server.received) == 1 and len(links.asked) == 1


class StuckLinks(FakeLinks):
    """The signer's link API hanging: the notifier is in the middle of sending a mail for as long as the test likes."""

    def __init__(self) -> None:
        super().__init__()
        self.asked_once = asyncio.Event()

    async def signing_link(self, request_id, mail_id):  # type: ignore[no-untyped-def]
        self.asked_once.set()
        await asyncio.Event().wait()


async def test_a_mail_being_sent_when_the_notifier_stops_goes_out_as_soon_as_it_starts_again(
    settings, smtp_server: SmtpServer, clock: FakeClock, db: asyncpg.Connection
) -> None:
    """A graceful stop gives back the claim on the mail it was sending: the next notifier sends it at once,
    not after the claim's lease (100 s with the default SMTP timeout) ran out."""
    stuck = StuckLinks()
    command = link_command(clock)
    async with running_notifier(settings, clock, stuck):
        await publish(settings, command)
        await asyncio.wait_for(stuck.asked_once.wait(), timeout=20)
    due = await db.fetchval("SELECT next_attempt_at FROM notifier.mails WHERE request_id = $1", command.request_id)
    assert due <= clock() + timedelta(seconds=1), f"the stopped notifier kept its claim until {due}"
    restarted = asyncio.get_running_loop().time()
    async with running_notifier(settings, clock, FakeLinks()):
        await smtp_server.wait_for_mail(ANN.email)
    assert asyncio.get_running_loop().time() - restarted < 10
    assert len(smtp_server.received) == 1


async def test_above_the_threshold_a_digest_person_gets_one_digest_a_day_instead_of_a_mail_per_request(
    provision, smtp_server: SmtpServer, amqp_url: str, clock: FakeClock, links: FakeLinks, db: asyncpg.Connection
) -> None:
    """PARAAF_DIGEST_THRESHOLD 3, digests from 08:00: Sofie (`mails: digest` in the directory) gets her first 3
    requests mailed; the next 2 wait for the 08:00 digest, which names all 5 with one link to her list, and no
    second one comes that day; a request held on Tuesday makes Tuesday's digest. Ann (`individual`) gets all 5 of
    hers, one by one."""
    admin = await provision()
    settings = notifier_settings(
        admin.database_url,
        admin.amqp_url,
        smtp_server,
        free_port(),
        secrets_dir=str(admin.secrets_dir),
        digest_threshold=3,
        digest_hour=8,
        public_url="https://paraaf.stad.test",
    )
    for person, mails in ((SOFIE, "digest"), (ANN, "individual")):
        await db.execute(
            "INSERT INTO router.people (org, id, name, email, department, mails) VALUES ('default', $1, $2, $3, 'Bestuur', $4)",
            person.id,
            person.name,
            person.email,
            mails,
        )
    clock.move_to(MONDAY.replace(hour=6))
    sofies = [link_command(clock, SOFIE, title=f"Schepenbesluit {n}") for n in range(1, 7)]
    anns = [link_command(clock, ANN, title=f"Besluit {n}") for n in range(1, 6)]

    async def held(count: int) -> bool:
        return await db.fetchval("SELECT count(*) FROM notifier.reminders WHERE held_for_digest") == count

    async with running_notifier(settings, clock, links):
        await publish(settings, *sofies[:3])
        individual = await smtp_server.wait_for_mail(SOFIE.email, count=3)
        await publish(settings, *sofies[3:5], *anns)
        await smtp_server.wait_for_mail(ANN.email, count=5)
        await eventually(lambda: held(2), "Sofie's 4th and 5th requests held for her digest")
        await quiet(0.5)
        assert len(smtp_server.received_by(SOFIE.email)) == 3, "no digest before 08:00"

        clock.move_to(MONDAY.replace(hour=8))
        digest = (await smtp_server.wait_for_mail(SOFIE.email, count=4))[-1]
        await quiet(1.0)
        assert len(smtp_server.received_by(SOFIE.email)) == 4, "one digest a day, not one per tick"

        await publish(settings, sofies[5])
        await eventually(lambda: held(3), "Sofie's 6th request held for Tuesday's digest")
        clock.move_to(MONDAY.replace(hour=8) + timedelta(days=1))
        tuesday = (await smtp_server.wait_for_mail(SOFIE.email, count=5))[-1]

    assert sorted(m.subject for m in individual) == [f"Ter ondertekening: Schepenbesluit {n}" for n in (1, 2, 3)]
    assert digest.subject == "5 documenten wachten op uw handtekening"
    assert all(f"- Schepenbesluit {n}" in digest.text for n in range(1, 6))
    assert "https://paraaf.stad.test/p/to-sign" in digest.text and 'href="https://paraaf.stad.test/p/to-sign"' in digest.html
    assert tuesday.subject == "6 documenten wachten op uw handtekening"
    assert sorted(m.subject for m in smtp_server.received_by(ANN.email)) == [
        f"Ter ondertekening: Besluit {n}" for n in range(1, 6)
    ]
    assert await db.fetchval("SELECT count(*) FROM notifier.digests WHERE person_id = 'sofie.smet'") == 2


async def test_many_mails_at_once_arrive_once_each_over_a_few_kept_sessions(
    settings, amqp_url: str, smtp_server: SmtpServer, clock: FakeClock, db: asyncpg.Connection
) -> None:
    """Twelve requests at once, four mails on their way at a time: each mail arrives once and is marked sent once with
    one notification.sent, over no more SMTP sessions than mails on their way, none closed while mail kept coming."""
    settings = settings.model_copy(update={"mail_parallel": 4})
    commands = [link_command(clock, title=f"Besluit {n}") for n in range(12)]
    async with running_notifier(settings, clock, FakeLinks()), Listener(amqp_url, EVENTS.name, ["notification.*"]) as events:
        await publish(settings, *commands)
        await smtp_server.wait_for_mail(ANN.email, count=12)
        sent = await events.wait("notification.sent", count=12)
        await quiet(0.5)
        quit_while_running = smtp_server.quits
    assert sorted(m.subject for m in smtp_server.received) == sorted(f"Ter ondertekening: Besluit {n}" for n in range(12))
    assert smtp_server.sessions <= 4 and quit_while_running == 0
    assert smtp_server.quits == smtp_server.sessions  # each ended politely at the stop
    assert sorted(e["causation_id"] for e in sent) == sorted(str(c.command_id) for c in commands)
    assert [key for key, _ in events.received] == ["notification.sent"] * 12
    statuses = await db.fetch("SELECT status, attempts FROM notifier.mails")
    assert [(r["status"], r["attempts"]) for r in statuses] == [("sent", 1)] * 12
