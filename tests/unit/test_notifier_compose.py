"""A composed mail, read back as a mail client reads what went over SMTP: every header and both bodies as written."""

import re
from email import message_from_bytes, policy
from email.charset import QP, Charset
from email.errors import HeaderParseError
from email.message import EmailMessage
from email.mime.text import MIMEText
from email.policy import Compat32, compat32

import pytest
from aiosmtplib.email import flatten_message
from hypothesis import given
from hypothesis import strategies as st

from services.notifier.compose import POLICY, _part, compose
from services.notifier.pipelining import flatten
from services.notifier.render import Mail

LONG_LINK = "https://paraaf.example/s/" + "x" * 1200
TEXT = f"Beste Ann,\n\nÀ signer : Collegebesluit 42 — open {LONG_LINK}\n.\nFrom here on: the mayor signs.\n"
HTML = f'<p>À signer : <a href="{LONG_LINK}">Collegebesluit 42</a></p>\nFrom here on\n'
SUBJECT = "À signer : Collegebesluit 42 — een onderwerp dat langer is dan één regel van achtenzeventig tekens"


def read_back(sender: str, recipient: str, content: Mail) -> tuple[EmailMessage, bytes]:
    sent = flatten_message(compose(sender, recipient, content, date="Mon, 30 Nov 2026 12:15:26 +0000", message_id="<m1@stad.be>"))
    message = message_from_bytes(sent, policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message, sent


def body(message: EmailMessage, kind: str) -> str:
    part = message.get_body((kind,))
    assert part is not None
    return part.get_content().replace("\r\n", "\n")


@pytest.mark.parametrize("recipient", ["ann.aerts@example.org", "anaïs@exämple.be"])
def test_a_mail_reads_back_as_written(recipient: str) -> None:
    """Names and subjects outside ASCII, a line longer than SMTP allows and a line starting "From " all arrive as
    written, in plain text and HTML, with the Message-ID and the Auto-Submitted mark; no line on the wire passes 998."""
    message, sent = read_back("Ville de Liège <paraaf@liege.be>", recipient, Mail(SUBJECT, TEXT, HTML))
    assert (str(message["Subject"]), str(message["To"])) == (SUBJECT, recipient)
    [sender] = message["From"].addresses
    assert (sender.display_name, sender.addr_spec) == ("Ville de Liège", "paraaf@liege.be")
    assert (message["Message-ID"], message["Auto-Submitted"]) == ("<m1@stad.be>", "auto-generated")
    assert body(message, "plain") == TEXT
    assert body(message, "html").rstrip("\n") == HTML.rstrip("\n")
    assert max(len(line) for line in sent.splitlines()) <= 998


def test_an_ascii_mail_keeps_its_headers_readable() -> None:
    """A plain ASCII subject and sender go out as they are, not encoded."""
    _, sent = read_back("Paraaf <paraaf@localhost>", "ann@x.be", Mail("Mail 1", "Hello\n", "<p>Hello</p>"))
    assert b"\nSubject: Mail 1\n" in sent and b"\nFrom: Paraaf <paraaf@localhost>\n" in sent


@pytest.mark.parametrize(
    ("sender", "subject"),
    [
        ("Paraaf <paraaf@localhost>", "Mail 1"),
        ("Ville de Liège <paraaf@liege.be>", SUBJECT),
        ("Paraaf <paraaf@localhost>", "An ASCII subject long enough that compat32 has to fold it over more than one line"),
    ],
)
def test_a_composed_mail_is_written_byte_for_byte_as_compat32_writes_it(sender: str, subject: str) -> None:
    """compose's policy writes the headers it takes over (one ASCII line that fits) exactly as compat32 does, and leaves
    it the others: the bytes on the wire are compat32's."""
    message = compose(sender, "ann@x.be", Mail(subject, TEXT, HTML), date="Mon, 30 Nov 2026 12:15:26 +0000", message_id="<m@x.be>")
    assert flatten(message, False, "8bit") == flatten_message(message, cte_type="8bit")
    assert flatten(message, False, "7bit") == flatten_message(message, cte_type="7bit")


@given(name=st.sampled_from(["Subject", "From", "To", "Content-Type", "X-Paraaf-Kind"]), value=st.text(alphabet=st.characters(max_codepoint=127), max_size=90))
def test_a_header_compose_writes_itself_is_what_compat32_writes(name: str, value: str) -> None:
    """Any ASCII value, printable or not, short or long: compose's policy folds it as compat32 does, or refuses it
    as compat32 does (a value that hides a header of its own)."""
    assert _folded(POLICY, name, value) == _folded(compat32, name, value)


def _folded(policy: Compat32, name: str, value: str) -> bytes | type[Exception]:
    try:
        return policy.fold_binary(name, value)
    except HeaderParseError:
        return HeaderParseError


@pytest.mark.parametrize("text", ["", "Hello\n", TEXT, HTML, "From x\r\nFrom y\rz\n  trailing  \n\ttab\t\n.\n", "<p>é</p>" * 300])
def test_a_part_is_what_mimetext_makes(text: str) -> None:
    """compose's text and HTML parts are written byte for byte as the email package's MIMEText writes them (with a
    quoted-printable utf-8 charset, and "From " at a line's start spelled =46rom, as compose did with MIMEText)."""
    charset = Charset("utf-8")
    charset.body_encoding = QP
    for subtype in ("plain", "html"):
        reference = MIMEText(text, subtype, charset)
        reference.set_payload(re.sub(r"^From ", "=46rom ", reference.get_payload(), flags=re.MULTILINE))
        for cte in ("8bit", "7bit"):
            assert flatten(_part(text, subtype), False, cte) == flatten_message(reference, cte_type=cte)
