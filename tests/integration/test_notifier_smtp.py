"""The notifier's SMTP delivery against a real SMTP server (aiosmtpd): its sessions stay open from one mail to the
next, and whatever the server does to a session, every mail arrives once; each test runs against a server that
offers PIPELINING (the envelope then goes in one write) and one that does not."""

import asyncio
import ipaddress
import ssl
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import aiosmtplib
import pytest
import uvloop
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from services.notifier.config import NotifierSettings
from services.notifier.sender import PermanentFailure, SmtpDelivery
from tests.support.smtp import SmtpServer


def mail(n: int, to: str = "ann@example.org") -> EmailMessage:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "Paraaf <paraaf@localhost>", to, f"Mail {n}"
    message.set_content(f"Mail number {n}")
    return message


@pytest.fixture(params=[True, False], ids=["pipelining", "one-command-at-a-time"])
async def smtp_server(request: pytest.FixtureRequest) -> AsyncIterator[SmtpServer]:
    server = SmtpServer(pipelining=request.param)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def delivery(smtp_server: SmtpServer) -> AsyncIterator[SmtpDelivery]:
    smtp = SmtpDelivery(NotifierSettings(smtp_host=smtp_server.host, smtp_port=smtp_server.port, smtp_timeout_seconds=5))
    yield smtp
    await smtp.aclose()


def subjects(server: SmtpServer) -> list[str]:
    return sorted(m.subject for m in server.received)


async def test_mails_one_after_another_go_over_one_session(delivery: SmtpDelivery, smtp_server: SmtpServer) -> None:
    """Five mails sent one after another reach the server over a single SMTP session, not one session each."""
    for n in range(5):
        await delivery(mail(n))
    assert subjects(smtp_server) == [f"Mail {n}" for n in range(5)]
    assert smtp_server.sessions == 1


async def test_a_server_that_offers_pipelining_gets_each_envelope_in_one_go_and_the_message_intact(
    delivery: SmtpDelivery, smtp_server: SmtpServer
) -> None:
    """Each mail's MAIL FROM, RCPT TO and DATA come together when the server offers PIPELINING, one by one when it
    does not; either way the message arrives as written, a line that starts with a dot included."""
    message = mail(0)
    message.set_content("Dear Ann,\n.\n..two dots\n.end\n")
    await delivery(message)
    await delivery(mail(1))
    [first, _] = sorted(smtp_server.received, key=lambda m: m.subject)
    assert first.message.get_content().replace("\r\n", "\n") == "Dear Ann,\n.\n..two dots\n.end\n"
    assert smtp_server.pipelined == (2 if smtp_server._handler.pipelining else 0)


async def test_mails_on_their_way_at_once_take_a_session_each_and_keep_them(
    delivery: SmtpDelivery, smtp_server: SmtpServer
) -> None:
    """Three mails handed over at once open three sessions; the next three reuse those instead of opening more."""
    await asyncio.gather(*(delivery(mail(n)) for n in range(3)))
    await asyncio.gather(*(delivery(mail(n)) for n in range(3, 6)))
    assert subjects(smtp_server) == [f"Mail {n}" for n in range(6)]
    assert smtp_server.sessions == 3


async def test_a_server_that_closes_each_session_after_its_mail_still_gets_every_mail_once(
    delivery: SmtpDelivery, smtp_server: SmtpServer
) -> None:
    """A server that hangs up after every mail (a short idle timeout): each next mail goes out on a new session,
    and arrives once."""
    smtp_server.close_after_each_mail()
    for n in range(3):
        await delivery(mail(n))
        await asyncio.sleep(0.2)  # the server has closed the session meanwhile
    assert subjects(smtp_server) == ["Mail 0", "Mail 1", "Mail 2"]
    assert smtp_server.sessions == 3


async def test_a_session_cut_just_as_it_is_reused_sends_the_mail_on_a_new_one(
    delivery: SmtpDelivery, smtp_server: SmtpServer
) -> None:
    """The server drops the open session as the next mail starts on it (its timeout struck then): the mail goes out
    on a new session at once, without an error for the sender, and arrives once."""
    await delivery(mail(0))
    smtp_server.hang_up_on_reuse(1)
    await delivery(mail(1))
    await delivery(mail(2))
    assert subjects(smtp_server) == ["Mail 0", "Mail 1", "Mail 2"]
    assert smtp_server.sessions == 2


async def test_a_421_on_an_open_session_sends_the_mail_on_a_new_one(delivery: SmtpDelivery, smtp_server: SmtpServer) -> None:
    """A 421 ("closing this session") to a mail on a session opened earlier: the mail goes out on a new session at once."""
    await delivery(mail(0))
    smtp_server.fail_next(1)
    await delivery(mail(1))
    assert subjects(smtp_server) == ["Mail 0", "Mail 1"]
    assert smtp_server.sessions == 2


async def test_a_server_that_keeps_answering_421_fails_the_mail_for_a_later_retry(
    delivery: SmtpDelivery, smtp_server: SmtpServer
) -> None:
    """A 421 on a new session too raises for the sender to retry the mail later; no session it failed on is used
    again, and the next mail arrives over a new one."""
    await delivery(mail(0))
    smtp_server.fail_next(2)
    with pytest.raises(aiosmtplib.SMTPResponseException) as refused:
        await delivery(mail(1))
    assert refused.value.code == 421
    await delivery(mail(2))
    assert subjects(smtp_server) == ["Mail 0", "Mail 2"]
    assert smtp_server.sessions == 3


async def test_a_refused_recipient_is_final_and_the_next_mail_still_goes_out(
    delivery: SmtpDelivery, smtp_server: SmtpServer
) -> None:
    """A 550 for the recipient raises a final refusal on a reused session too, and the mail after it arrives."""
    await delivery(mail(0))
    smtp_server.refuse("marc@example.org")
    with pytest.raises(PermanentFailure):
        await delivery(mail(1, to="marc@example.org"))
    await delivery(mail(2))
    assert subjects(smtp_server) == ["Mail 0", "Mail 2"]


async def test_a_refused_sender_fails_the_mail_for_a_retry_and_the_next_mail_still_goes_out(
    delivery: SmtpDelivery, smtp_server: SmtpServer
) -> None:
    """A 451 to MAIL FROM raises for the sender to retry the mail later (not a final refusal); the session is not used
    again, and the next mail arrives over a new one."""
    await delivery(mail(0))
    smtp_server.refuse_senders(1)
    with pytest.raises(aiosmtplib.SMTPSenderRefused) as refused:
        await delivery(mail(1))
    assert refused.value.code == 451
    await delivery(mail(2))
    assert subjects(smtp_server) == ["Mail 0", "Mail 2"]
    assert smtp_server.sessions == 2


async def test_an_idle_session_is_closed_with_quit(smtp_server: SmtpServer) -> None:
    """A session left unused for the idle time is ended politely (QUIT), and a later mail opens a new one."""
    settings = NotifierSettings(smtp_host=smtp_server.host, smtp_port=smtp_server.port, smtp_timeout_seconds=5)
    delivery = SmtpDelivery(settings, idle_seconds=0.2)
    await delivery(mail(0))
    assert smtp_server.quits == 0
    for _ in range(50):
        if smtp_server.quits:
            break
        await asyncio.sleep(0.05)
    assert smtp_server.quits == 1
    await delivery(mail(1))
    await delivery.aclose()
    assert smtp_server.sessions == 2 and smtp_server.quits == 2


def _certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "relay.test")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "relay.pem", directory / "relay.key"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_file, key_file


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelining", "one-command-at-a-time"])
async def test_a_relay_that_requires_starttls_and_a_login_gets_every_mail_over_one_session(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pipelining: bool, loop: str
) -> None:
    """A relay that takes mail only after STARTTLS and AUTH (as a city's does): three mails arrive over one session,
    pipelined or not, on the services' event loop (uvloop) and the standard one alike."""
    cert_file, key_file = _certificate(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert_file))  # the client trusts the relay's certificate, as it would a CA's
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert_file, key_file)
    server = SmtpServer(pipelining=pipelining, tls=tls, login=("paraaf", "s3cret"))
    await server.start()
    settings = NotifierSettings(
        smtp_host=server.host, smtp_port=server.port, smtp_timeout_seconds=5, smtp_starttls=True,
        smtp_user="paraaf", smtp_password="s3cret",  # type: ignore[arg-type]
    )

    async def send() -> None:
        delivery = SmtpDelivery(settings)
        for n in range(3):
            await delivery(mail(n))
        await delivery.aclose()

    try:
        if loop == "uvloop":
            await asyncio.to_thread(uvloop.run, send())
        else:
            await send()
    finally:
        await server.stop()
    assert subjects(server) == ["Mail 0", "Mail 1", "Mail 2"]
    assert server.sessions == 1 and server.quits == 1
    assert server.pipelined == (3 if pipelining else 0)
