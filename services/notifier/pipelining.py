"""An SMTP session that sends a mail in two round trips where aiosmtplib takes four: with a server that offers
PIPELINING (RFC 2920; Postfix, Exim, Exchange and the hosted relays do), MAIL FROM, RCPT TO and DATA go in one
write, their replies are read together, then the message. aiosmtplib cannot read more than one reply per write (it
drops what comes while a reply waits to be picked up), so it opens the session (EHLO, STARTTLS, AUTH) and this
takes its connection over for the mails. A refusal raises what aiosmtplib raises for it, so the sender treats both
paths alike; any error leaves the session unusable (the sender drops it).
"""

import asyncio
import collections
import io
from email.generator import BytesGenerator
from email.message import EmailMessage, Message

import aiosmtplib
from aiosmtplib.email import extract_recipients, extract_sender, flatten_message, quote_address
from aiosmtplib.protocol import PERIOD_REGEX, normalize_message_line_endings

__all__ = ["PipelinedSession", "flatten", "pipelines"]


async def pipelines(session: aiosmtplib.SMTP) -> bool:
    """Whether the server of this open session takes pipelined commands (it greets it first, unless that was done:
    aiosmtplib says EHLO only before the first mail, or for STARTTLS and AUTH)."""
    if session.is_ehlo_or_helo_needed:
        try:
            await session.ehlo()
        except aiosmtplib.SMTPHeloError:
            if not session.is_connected:
                raise
            await session.helo()
    return session.supports_extension("pipelining")


class _Replies(asyncio.Protocol):
    """The replies of the server, parsed as they come, however many one segment holds."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._lines: list[str] = []
        self._replies: collections.deque[aiosmtplib.SMTPResponse] = collections.deque()
        self._waiter: asyncio.Future[None] | None = None
        self._lost: Exception | None = None

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = aiosmtplib.SMTPServerDisconnected(f"the SMTP server closed the connection: {exc!r}")
        self.transport = None
        self._wake()

    def eof_received(self) -> bool:
        return False  # close the transport

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while (end := self._buffer.find(b"\n")) >= 0:
            line, self._buffer = bytes(self._buffer[: end + 1]), self._buffer[end + 1 :]
            try:
                code = int(line[:3])
            except ValueError:
                self._lost = aiosmtplib.SMTPResponseException(
                    aiosmtplib.SMTPStatus.invalid_response, f"malformed SMTP reply line: {line!r}"
                )
                break
            self._lines.append(line[4:].strip(b" \t\r\n").decode("utf-8", "surrogateescape"))
            if line[3:4] != b"-":
                self._replies.append(aiosmtplib.SMTPResponse(code, "\n".join(self._lines)))
                self._lines = []
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def reply(self, timeout: float | None) -> aiosmtplib.SMTPResponse:
        while not self._replies:
            if self._lost is not None:
                raise self._lost
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await asyncio.wait_for(self._waiter, timeout)
            except TimeoutError:
                raise aiosmtplib.SMTPReadTimeoutError("timed out waiting for the SMTP server's reply") from None
        return self._replies.popleft()


class PipelinedSession:
    """An open session, taken over from ``session`` (which must not be used again), that sends pipelined mails;
    ``is_connected``, ``send_message``, ``quit`` and ``close`` as aiosmtplib's."""

    def __init__(self, session: aiosmtplib.SMTP) -> None:
        self._timeout = session.timeout
        self._extensions = {name.lower() for name in session.esmtp_extensions}
        transport = session.transport
        if transport is None:
            raise aiosmtplib.SMTPServerDisconnected("the session is not connected")
        self._replies = _Replies()
        self._replies.transport = transport  # type: ignore[assignment]
        transport.set_protocol(self._replies)

    @property
    def is_connected(self) -> bool:
        transport = self._replies.transport
        return transport is not None and not transport.is_closing()

    def close(self) -> None:
        if self._replies.transport is not None:
            self._replies.transport.close()

    async def quit(self) -> None:
        self._write(b"QUIT\r\n")
        await self._replies.reply(self._timeout)
        self.close()

    def _write(self, data: bytes) -> None:
        if not self.is_connected:
            raise aiosmtplib.SMTPServerDisconnected("the SMTP session is closed")
        self._replies.transport.write(data)  # type: ignore[union-attr]

    async def send_message(self, message: Message) -> None:
        sender, recipients = extract_sender(message), extract_recipients(message)
        if sender is None or not recipients:
            raise ValueError("a message needs a From and a recipient")
        options = []
        utf8 = not (sender.isascii() and all(r.isascii() for r in recipients))
        if utf8:
            if "smtputf8" not in self._extensions:
                raise aiosmtplib.SMTPNotSupported("an address outside ASCII needs SMTPUTF8, which this server lacks")
            options.append("SMTPUTF8")
        eight_bit = "8bitmime" in self._extensions
        if eight_bit:
            options.append("BODY=8BITMIME")
        message_bytes = normalize_message_line_endings(flatten(message, utf8, "8bit" if eight_bit else "7bit"))
        if "size" in self._extensions:
            options.insert(0, f"SIZE={len(message_bytes)}")  # RFC 1870, as aiosmtplib counts it
        encoding = "utf-8" if utf8 else "ascii"
        envelope = [f"MAIL FROM:{quote_address(sender)}{''.join(' ' + o for o in options)}\r\n"]
        envelope += [f"RCPT TO:{quote_address(r)}\r\n" for r in recipients]
        self._write(("".join(envelope) + "DATA\r\n").encode(encoding))
        await self._envelope_accepted(sender, recipients)
        self._write(PERIOD_REGEX.sub(b"..", message_bytes) + b".\r\n")  # a leading dot doubled (RFC 5321 4.5.2)
        done = await self._replies.reply(self._timeout)
        if done.code != aiosmtplib.SMTPStatus.completed:
            raise aiosmtplib.SMTPDataError(done.code, done.message)

    async def _envelope_accepted(self, sender: str, recipients: list[str]) -> None:
        """Read the replies to MAIL, each RCPT and DATA (all of them, so the session stays in step)."""
        mail = await self._replies.reply(self._timeout)
        refused = []
        for recipient in recipients:
            reply = await self._replies.reply(self._timeout)
            if reply.code not in (aiosmtplib.SMTPStatus.completed, aiosmtplib.SMTPStatus.will_forward):
                refused.append(aiosmtplib.SMTPRecipientRefused(reply.code, reply.message, recipient))
        data = await self._replies.reply(self._timeout)
        if data.code == aiosmtplib.SMTPStatus.start_input and (
            mail.code != aiosmtplib.SMTPStatus.completed or len(refused) == len(recipients)
        ):
            self._write(b".\r\n")  # RFC 2920: DATA accepted though the envelope was not; send no message
            await self._replies.reply(self._timeout)
        if mail.code != aiosmtplib.SMTPStatus.completed:
            raise aiosmtplib.SMTPSenderRefused(mail.code, mail.message, sender)
        if len(refused) == len(recipients):
            raise aiosmtplib.SMTPRecipientsRefused(refused)
        if data.code != aiosmtplib.SMTPStatus.start_input:
            raise aiosmtplib.SMTPDataError(data.code, data.message)


def flatten(message: Message, utf8: bool, cte_type: str) -> bytes:
    """The message as aiosmtplib would write it; a classic one (compose's) with its own policy and without a copy."""
    if isinstance(message, EmailMessage) or "Bcc" in message or "Resent-Bcc" in message:
        return flatten_message(message, utf8=utf8, cte_type=cte_type)
    policy = message.policy if cte_type == "8bit" else message.policy.clone(cte_type=cte_type)
    with io.BytesIO() as out:
        BytesGenerator(out, policy=policy).flatten(message)
        return out.getvalue()
