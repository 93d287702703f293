"""A mail as it goes to the SMTP server: plain text and HTML alternatives, UTF-8.

Built with the email package's classic (compat32) classes, which take headers
as given: ``EmailMessage`` parses every header it is given or makes (16 a mail)
through its header registry and again to fold them, which cost ~2.5 ms of CPU a
mail against ~0.7 ms so. Names and subjects outside ASCII are encoded here
(RFC 2047) and bodies quoted-printable; an address outside ASCII (it needs
SMTPUTF8) takes the ``EmailMessage`` route, which knows those rules.

Writing the message out cost more than building it: compat32 builds and encodes a ``Header`` for every header, even
one that needs no folding (~75 % of writing a mail), and looks for a boundary the parts do not contain with a
regular expression compiled per mail. So its policy writes a header that is one ASCII line that fits as it is
(byte for byte what compat32 writes: tests/unit/test_notifier_compose.py), and its boundary starts with "=_", which
quoted-printable parts cannot contain (they spell "=" as "=3D").
"""

import re
import uuid
from email.charset import QP, Charset
from email.header import Header
from email.message import EmailMessage, Message
from email.mime.multipart import MIMEMultipart
from email.policy import Compat32
from email.utils import formataddr, parseaddr

from services.notifier.render import Mail

__all__ = ["POLICY", "compose"]


class _QuickCompat32(Compat32):
    """compat32, writing a header that needs no folding (one printable ASCII line that fits) without the Header
    machinery."""

    def fold_binary(self, name: str, value: object) -> bytes:
        if isinstance(value, str) and value.isascii() and value.isprintable() and len(name) + 2 + len(value) <= 78:
            return f"{name}: {value}{self.linesep}".encode("ascii")
        return super().fold_binary(name, value)


POLICY = _QuickCompat32()

_UTF8 = Charset("utf-8")
_UTF8.body_encoding = QP  # readable, and no line longer than SMTP allows; base64 would be the default
_FROM_LINE = re.compile(r"^From ", re.MULTILINE)


def compose(sender: str, recipient: str, content: Mail, *, date: str, message_id: str) -> Message:
    name, address = parseaddr(sender)
    if not (address.isascii() and recipient.isascii()):
        return _with_registry(sender, recipient, content, date=date, message_id=message_id)
    message = MIMEMultipart("alternative", boundary=f"=_{uuid.uuid4().hex}", policy=POLICY)
    message["From"] = formataddr((name, address), charset="utf-8")
    message["To"] = recipient
    message["Subject"] = content.subject if content.subject.isascii() else Header(content.subject, _UTF8)
    message["Date"] = date
    message["Message-ID"] = message_id
    # RFC 3834: out-of-office replies (signers on leave) must not answer a machine.
    message["Auto-Submitted"] = "auto-generated"
    message.attach(_part(content.text, "plain"))
    message.attach(_part(content.html, "html"))
    return message


def _part(text: str, subtype: str) -> Message:
    """What ``MIMEText(text, subtype, _UTF8)`` makes, headers in its order, at half its cost (it parses and rewrites
    its own Content-Type to set the charset): tests/unit/test_notifier_compose.py compares the two."""
    part = Message(policy=POLICY)
    part["Content-Type"] = f'text/{subtype}; charset="utf-8"'
    part["MIME-Version"] = "1.0"
    part["Content-Transfer-Encoding"] = "quoted-printable"
    # The classic generator writes a line starting "From " as ">From " (mbox); quoted-printable may spell the F.
    part.set_payload(_FROM_LINE.sub("=46rom ", _UTF8.body_encode(text)))
    return part


def _with_registry(sender: str, recipient: str, content: Mail, *, date: str, message_id: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = recipient
    message["Subject"] = content.subject
    message["Date"] = date
    message["Message-ID"] = message_id
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(content.text)
    message.add_alternative(content.html, subtype="html")
    return message
