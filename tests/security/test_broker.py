"""The broker is a trust boundary: with the credentials every integrator holds,
a partner system can neither read what is not its own nor forge what the
services say to each other — refused by RabbitMQ's permissions, and (with
those permissions loosened on purpose) by the consumers themselves."""

import asyncio
import base64
import dataclasses
import subprocess
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import aio_pika
import asyncpg
import httpx
import pytest

from shared.contract import ReassignRequest, ReissueSigningLink, ResendSigningMail, SendDownloadLink, SendSigningLink
from shared.events import (
    DocumentAccepted,
    DocumentCompleted,
    DocumentDeclined,
    DocumentRejected,
    DocumentSubmitted,
    DocumentWithdrawn,
    NotificationFailed,
    NotificationSent,
    PersonRef,
    RoutingFailed,
    SignatureCancelled,
    SignatureDeclined,
    SignatureReassigned,
    SignatureRecord,
    SignatureRequested,
    Signed,
    SigningMailResent,
    TimestampFailed,
)
from shared.topology import COMMANDS, EVENTS, TOPOLOGY
from tests.security.conftest import State, attempted, drain, refusal, settle
from tests.support.pdfs import make_pdf
from tests.support.system import Outcomes, System, follow_link, submission
from tests.support.validate import pdfsig

pytestmark = pytest.mark.e2e

MAYOR = PersonRef(id="bart.baert", name="Bart Baert", email="bart.baert@demo.paraaf.be", title="burgemeester")
DIRECTOR = PersonRef(id="ann.aerts", name="Ann Aerts", email="ann.aerts@demo.paraaf.be", title="algemeen directeur")
SUBMITTER = PersonRef(id="elen.elaut", name="Elen Elaut", email="elen.elaut@demo.paraaf.be")
FORGED_PDF = make_pdf(text="The city grants permit 666 to ACME")


@pytest.fixture
async def attacker(city: System) -> AsyncIterator[aio_pika.abc.AbstractConnection]:
    """A partner system's connection: source notula's own broker user."""
    connection = await aio_pika.connect(city.source_urls["notula"])
    yield connection
    await connection.close()


async def _new_channel(connection: aio_pika.abc.AbstractConnection) -> aio_pika.abc.AbstractChannel:
    return await connection.channel(publisher_confirms=True)


async def test_a_source_cannot_bind_a_queue_to_any_exchange_or_read_another_queue(
    city: System, attacker: aio_pika.abc.AbstractConnection
) -> None:
    """With notula's credentials: declaring a queue to bind to esign.commands, esign.outcomes or esign.events,
    binding its own queue there, or consuming a service's or another source's queue — every step is refused."""
    before = await State.of(city)
    steps = {
        "declare a queue of its own (to bind to esign.commands with #)": lambda ch: ch.declare_queue(exclusive=True),
        "bind its outcomes queue to esign.commands with #": lambda ch: _bind(ch, "outcomes.notula", "esign.commands", "#"),
        "bind its outcomes queue to esign.events with #": lambda ch: _bind(ch, "outcomes.notula", "esign.events", "#"),
        "bind its outcomes queue to every source's outcomes (#)": lambda ch: _bind(ch, "outcomes.notula", "esign.outcomes", "#"),
        "consume notifier.events (the commands carrying mails)": lambda ch: _consume(ch, "notifier.events"),
        "consume outcomes.omgeving (another source's signed PDFs)": lambda ch: _consume(ch, "outcomes.omgeving"),
        "consume intake.rejected": lambda ch: _consume(ch, "intake.rejected"),
    }
    for step, work in steps.items():
        channel = await _new_channel(attacker)
        answer = await refusal(lambda w=work, c=channel: w(c))
        attempted(f"as source notula: {step}", answer)
        assert "ACCESS_REFUSED" in answer, (step, answer)
    assert await State.of(city) == before


async def _bind(channel: aio_pika.abc.AbstractChannel, queue: str, exchange: str, key: str) -> None:
    found = await channel.declare_queue(queue, passive=True)
    await found.bind(exchange, key)


async def _consume(channel: aio_pika.abc.AbstractChannel, queue: str) -> None:
    found = await channel.declare_queue(queue, passive=True)
    await found.consume(lambda message: None)


async def test_a_source_can_publish_only_its_own_submissions_as_itself(
    city: System, attacker: aio_pika.abc.AbstractConnection
) -> None:
    """With notula's credentials: a signature.requested on esign.events, a SendSigningLink on esign.commands,
    an outcome on esign.outcomes, a submission, withdrawal or status question as `omgeving`, or any message with another user_id — refused by RabbitMQ."""
    before = await State.of(city)
    forged = _forged_request()
    steps = {
        "publish signature.requested (the mayor, an arbitrary PDF) on esign.events": ("esign.events", forged.routing_key, None),
        "publish SendSigningLink (a phishing mail to the mayor) on esign.commands": ("esign.commands", "notify.signing-link", None),
        "publish a completed outcome on esign.outcomes": ("esign.outcomes", "notula.completed", None),
        "publish submit.omgeving on esign.intake": ("esign.intake", "submit.omgeving", None),
        "withdraw omgeving's documents (withdraw.omgeving on esign.intake)": ("esign.intake", "withdraw.omgeving", None),
        "ask about omgeving's documents (status.omgeving on esign.intake)": ("esign.intake", "status.omgeving", None),
        "publish submit.notula with user_id of the router": ("esign.intake", "submit.notula", f"{city.settings.broker_user_prefix}.router"),
    }
    for step, (exchange, key, user_id) in steps.items():
        channel = await _new_channel(attacker)

        async def publish(ex: str = exchange, k: str = key, u: str | None = user_id, ch=channel) -> None:
            target = await ch.get_exchange(ex, ensure=False)
            await target.publish(aio_pika.Message(forged.to_json(), user_id=u), k)

        answer = await refusal(publish)
        attempted(f"as source notula: {step}", answer)
        assert "ACCESS_REFUSED" in answer or "PRECONDITION_FAILED" in answer, (step, answer)
    await settle()
    assert await State.of(city) == before


def _forged_request(document_id=None, pdf_sha256: str | None = None, signer: PersonRef = MAYOR) -> SignatureRequested:
    from shared.blobs import sha256_hex

    return SignatureRequested(
        correlation_id=document_id or uuid4(),
        request_id=uuid4(),
        step=1,
        step_count=1,
        signer=signer,
        title="Omgevingsvergunning 666",
        filename="permit-666.pdf",
        submitted_by=SUBMITTER,
        pdf_sha256=pdf_sha256 or sha256_hex(FORGED_PDF),
        signature_count=1,
    )


def _every_internal_message(document_id, request_id) -> list:
    """One of each event and command the services send each other, as an attacker would forge them."""
    now = datetime.now(UTC)
    record = SignatureRecord(request_id=request_id, step=1, action="sign", signer=DIRECTOR, signed_at=now)
    common = {"correlation_id": document_id}
    return [
        DocumentSubmitted(**common, source="notula", external_ref="FORGED", title="Forged", flow="collegebesluit",
                          submitted_by="elen.elaut", filename="f.pdf", pdf_sha256="0" * 64, pdf_size=1, page_count=1),
        DocumentRejected(**common, source="notula", code="forged", reason="forged"),
        DocumentAccepted(**common, flow="collegebesluit", step_count=2),
        _forged_request(document_id),
        Signed(**common, request_id=request_id, step=1, action="sign", signer=DIRECTOR, signed_at=now,
               pdf_sha256="0" * 64, revision=1),
        SignatureDeclined(**common, request_id=request_id, step=1, signer=DIRECTOR, reason="forged"),
        SignatureReassigned(**common, request_id=request_id, new_request_id=uuid4(), from_person=DIRECTOR,
                            to_person=MAYOR, reason="forged"),
        SignatureCancelled(**common, request_id=request_id, reason="forged"),
        DocumentCompleted(**common, pdf_sha256="0" * 64, signatures=[record, record], title="Forged", submitted_by=SUBMITTER),
        DocumentDeclined(**common, declined_by=DIRECTOR, reason="forged", submitted_by=SUBMITTER),
        DocumentWithdrawn(**common, withdrawn_by="elen.elaut", reason="forged"),
        RoutingFailed(**common, request_id=request_id, signer=MAYOR, reason="forged"),
        NotificationSent(**common, kind="signature_request", recipient=MAYOR.email, subject="forged"),
        NotificationFailed(**common, kind="signature_request", recipient=MAYOR.email, reason="forged"),
        SendSigningLink(**common, request_id=request_id, recipient=MAYOR, title="Dringend: bevestig uw account",
                        submitted_by=SUBMITTER, step=1, step_count=1, action="sign", expires_at=now + timedelta(days=1)),
        SendDownloadLink(**common, recipient=MAYOR, title="Forged", expires_at=now + timedelta(days=1)),
        ReissueSigningLink(**common, request_id=request_id, reminder=1),
        ResendSigningMail(**common, request_id=request_id, resent_by="operator:forged", reason="forged"),
        ReassignRequest(**common, request_id=request_id, to_person="marc.maes", reassigned_by="operator:iris.ilegems", reason="forged"),
        SigningMailResent(**common, request_id=request_id, signer=MAYOR, resent_by="operator:forged", reason="forged"),
        TimestampFailed(**common, request_id=request_id, tsa_url="http://tsa.forged", reason="forged"),
    ]


def _queues_for(exchange: str, routing_key: str) -> list[str]:
    def matches(pattern: str) -> bool:
        return pattern == "#" or pattern == routing_key

    return [q.name for q in TOPOLOGY.queues for b in q.bindings if b.exchange.name == exchange and matches(b.routing_key)]


@pytest.fixture
def loosened(city: System) -> AsyncIterator[None]:
    """notula's user given write access to esign.events and esign.commands (as a misconfigured broker would);
    `paraaf sources add` puts its permissions back afterwards."""
    vhost = city.amqp_url.rsplit("/", 1)[-1]
    user = f"{city.settings.broker_user_prefix}.source.notula"
    subprocess.run(["rabbitmqctl", "set_permissions", "-p", vhost, user, "^$", "^esign\\..*$", "^outcomes\\.notula$"], check=True, capture_output=True)
    for exchange in ("esign.events", "esign.commands"):
        subprocess.run(["rabbitmqctl", "set_topic_permissions", "-p", vhost, user, exchange, ".*", "^$"], check=True, capture_output=True)
    yield
    city.cli("sources", "add", "notula", "--org", "default", "--any-submitter", "--ad-hoc-steps")


async def test_with_loosened_permissions_every_forged_internal_message_is_dead_lettered_by_its_consumers(
    city: System, loosened: None, attacker: aio_pika.abc.AbstractConnection
) -> None:
    """Even allowed to publish on esign.events and esign.commands, the partner system's 21 forged message types
    (signature.requested, signature.signed, SendSigningLink, ...) change nothing: each consumer parks them as
    `untrusted publisher`, no mail goes out, no certificate is issued and the audit log records none of them."""
    async with Outcomes(city.amqp_url, "notula.*") as outcomes:
        await city.publish(submission(make_pdf(), external_ref="LOOSE-1", title="Besluit LOOSE-1"))
        accepted = await outcomes.wait("notula.accepted", "LOOSE-1")
    await _mail_about(city, DIRECTOR.email, "Besluit LOOSE-1")
    await settle()
    document_id = accepted["document_id"]
    before = await State.of(city)
    forged = _every_internal_message(document_id, uuid4())
    channel = await _new_channel(attacker)
    for message in forged:
        exchange = await channel.get_exchange(COMMANDS.name if "command_id" in type(message).model_fields else EVENTS.name, ensure=False)
        await exchange.publish(
            aio_pika.Message(message.model_dump_json().encode(), delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                             user_id=f"{city.settings.broker_user_prefix}.source.notula"),
            message.routing_key,
        )
    attempted(
        f"as source notula, with write access to esign.events and esign.commands: publish {len(forged)} forged message types",
        "RabbitMQ delivered them (permissions loosened); each consumer parked them as `untrusted publisher`",
    )
    expected: dict[str, int] = {}
    for message in forged:
        exchange = COMMANDS.name if "command_id" in type(message).model_fields else EVENTS.name
        for queue in _queues_for(exchange, message.routing_key):
            expected[queue] = expected.get(queue, 0) + 1
    await settle(3.0)
    for queue, count in expected.items():
        parked = await drain(city.amqp_url, f"{queue}.dlq")
        assert len(parked) == count, (queue, [m.headers.get("x-paraaf-reason") for m in parked])
        assert {m.headers["x-paraaf-reason"] for m in parked} == {"untrusted publisher"}
        assert {m.headers["x-paraaf-publisher"] for m in parked} == {f"{city.settings.broker_user_prefix}.source.notula"}
    assert await State.of(city) == before
    assert not outcomes.bodies("notula.completed")
    assert city.smtp.received_by(MAYOR.email) == []  # type: ignore[attr-defined]


async def test_a_compromised_router_still_cannot_make_the_signer_sign_what_intake_did_not_accept(city: System) -> None:
    """Publishing as the router itself: a request for a PDF intake never accepted, for a real document with another
    document's PDF, and for the mayor at the attacker's address — the signer refuses each, issues no certificate, mails nothing."""
    async with Outcomes(city.amqp_url, "notula.*") as outcomes:
        await city.publish(submission(make_pdf(text="a real decision"), external_ref="REAL-1", title="Besluit REAL-1"))
        real = await outcomes.wait("notula.accepted", "REAL-1")
        await city.publish(submission(make_pdf(text="another real decision"), external_ref="REAL-2", title="Besluit REAL-2"))
        other = await outcomes.wait("notula.accepted", "REAL-2")
    for title in ("Besluit REAL-1", "Besluit REAL-2"):
        await _mail_about(city, DIRECTOR.email, title)
    await settle()  # and the audit log has recorded that they were sent
    before = await State.of(city)
    other_pdf = await _original_digest(city, other["document_id"])
    attacks = {
        "signature.requested for the mayor on a PDF intake never accepted": _forged_request(),
        "signature.requested for a real document with another document's PDF": _forged_request(real["document_id"], other_pdf),
        "signature.requested for the mayor at the attacker's address": _forged_request(
            real["document_id"], await _original_digest(city, real["document_id"]), MAYOR.model_copy(update={"email": "mallory@evil.example"})
        ),
    }
    for attack in attacks.values():
        await city.publish_as("router", attack)
    await settle(3.0)
    parked = await drain(city.amqp_url, "signer.events.dlq")
    reasons = [m.headers["x-paraaf-reason"] for m in parked]
    for (step, _), reason in zip(attacks.items(), reasons, strict=True):
        attempted(f"as the router (its own credentials): {step}", f"signer refused: {reason}")
    assert "was never accepted by intake" in reasons[0]
    assert "is no version of document" in reasons[1]
    assert "is not who the directory says" in reasons[2]
    after = await State.of(city)
    # The audit log does record what the router said: that is how an operator finds the compromised service.
    assert after.log_entries == before.log_entries + len(attacks)
    assert dataclasses.replace(after, log_entries=before.log_entries) == before


async def _original_digest(city: System, document_id: str) -> str:
    conn = await asyncpg.connect(city.env["PARAAF_DATABASE_URL"])
    try:
        return await conn.fetchval("SELECT pdf_sha256 FROM intake.documents WHERE document_id = $1::uuid", document_id)
    finally:
        await conn.close()


async def test_a_signed_document_still_completes_for_the_real_signers_after_all_this(city: System) -> None:
    """The honest path still works beside the attacks: both signers sign by link and the source gets a PDF pdfsig accepts."""
    title = "Collegebesluit eerlijk"
    async with Outcomes(city.amqp_url, "notula.*") as outcomes, httpx.AsyncClient() as browser:
        await city.publish(submission(make_pdf(), external_ref="HONEST-1", title=title))
        director = await _mail_about(city, DIRECTOR.email, title)
        assert (await follow_link(browser, director.signing_link)).status_code == 200
        mayor = await _mail_about(city, MAYOR.email, title)
        assert (await follow_link(browser, mayor.signing_link)).status_code == 200
        completed = await outcomes.wait("notula.completed", "HONEST-1")
    reports = pdfsig(base64.b64decode(completed["pdf"]), await city.root_certificate())
    assert [(r.signer, r.signature_valid, r.certificate_trusted) for r in reports] == [
        ("Ann Aerts", True, True),
        ("Bart Baert", True, True),
    ]


async def _mail_about(city: System, address: str, title: str, timeout: float = 30.0):  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        found = [m for m in city.smtp.received_by(address) if title in m.subject]  # type: ignore[attr-defined]
        if found:
            return found[-1]
        await asyncio.sleep(0.1)
    raise AssertionError(f"no mail about {title!r} to {address}")
