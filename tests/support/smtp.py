"""A real SMTP server for tests (aiosmtpd), keeping every message it accepts.

It can also misbehave on purpose: answer 421 to the next N deliveries (a
server that is down), refuse given recipients with 550, close every session
after its mail (a server whose idle timeout is shorter than the client's), or
hang up on the next mail of a session that already delivered one (the
server's timeout struck just as the client reused the session). It offers
PIPELINING (RFC 2920), as the relays Paraaf sends through do, unless made with
``pipelining=False``. It tells how many SMTP sessions delivered mail and how
many ended with QUIT, and which of them pipelined their commands.
"""

import asyncio
import re
import ssl
import time
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.support.net import free_port

__all__ = ["Received", "SmtpServer"]

_LINK = re.compile(r"https?://[^\s<>\"]+/s/[A-Za-z0-9_-]+")
_DOWNLOAD = re.compile(r"https?://[^\s<>\"]+/d/[A-Za-z0-9_-]+")


@dataclass(frozen=True)
class Received:
    mail_from: str
    to: tuple[str, ...]
    message: EmailMessage

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    @property
    def text(self) -> str:
        part = self.message.get_body(preferencelist=("plain",))
        return part.get_content() if part else ""

    @property
    def html(self) -> str:
        part = self.message.get_body(preferencelist=("html",))
        return part.get_content() if part else ""

    @property
    def signing_link(self) -> str:
        match = _LINK.search(self.text)
        if match is None:
            raise AssertionError(f"no signing link in mail {self.subject!r}:\n{self.text}")
        return match.group(0)

    @property
    def download_link(self) -> str:
        match = _DOWNLOAD.search(self.text)
        if match is None:
            raise AssertionError(f"no download link in mail {self.subject!r}:\n{self.text}")
        return match.group(0)


@dataclass
class _Handler:
    received: list[Received] = field(default_factory=list)
    unavailable_for: int = 0  # answer 421 to this many more deliveries
    refused: set[str] = field(default_factory=set)
    attempts: int = 0
    sessions: list[tuple[str, int]] = field(default_factory=list)  # the peer of each session, as it delivered its first mail
    quits: int = 0
    close_after_each_mail: bool = False
    hang_up_on_reuse: int = 0  # close this many more sessions when they start a second mail, without answering
    pipelining: bool = True
    senders_refused: int = 0  # answer 451 to this many more MAIL FROM
    pipelined: int = 0  # mails whose RCPT TO came in the same segment as their MAIL FROM

    async def handle_EHLO(self, server, session, envelope, hostname, responses):  # noqa: N802 - aiosmtpd hook
        session.host_name = hostname
        return [*responses[:-1], "250-PIPELINING", responses[-1]] if self.pipelining else responses

    async def handle_MAIL(self, server, session, envelope, address, mail_options):  # noqa: N802 - aiosmtpd hook
        if self.hang_up_on_reuse > 0 and session.peer in self.sessions:
            self.hang_up_on_reuse -= 1
            server.transport.close()
            return "421 4.4.2 Timeout, closing"
        if self.senders_refused > 0:
            self.senders_refused -= 1
            return "451 4.3.0 Sender address temporarily rejected"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        if b"RCPT TO" in server._reader._buffer:  # the rest of the envelope already waits: sent in one go with MAIL
            self.pipelined += 1
        return "250 OK"

    async def handle_QUIT(self, server, session, envelope):  # noqa: N802 - aiosmtpd hook
        self.quits += 1
        return "221 Bye"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802 - aiosmtpd hook
        if address.lower() in self.refused:
            return "550 5.1.1 No such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd hook
        self.attempts += 1
        if session.peer not in self.sessions:
            self.sessions.append(session.peer)
        if self.close_after_each_mail:
            asyncio.get_running_loop().call_later(0.05, server.transport.close)
        if self.unavailable_for > 0:
            self.unavailable_for -= 1
            return "421 4.3.2 Service not available, try again later"
        message = message_from_bytes(envelope.original_content or envelope.content, policy=policy.default)
        self.received.append(Received(envelope.mail_from, tuple(envelope.rcpt_tos), message))
        return "250 OK"


def _authenticator(login: tuple[str, str]):  # type: ignore[no-untyped-def]
    def check(server, session, envelope, mechanism, auth_data) -> AuthResult:  # type: ignore[no-untyped-def]
        given = (auth_data.login.decode(), auth_data.password.decode()) if isinstance(auth_data, LoginPassword) else None
        return AuthResult(success=given == login)

    return check


class SmtpServer:
    """``tls`` (a server-side SSL context) makes it require STARTTLS, and ``login`` (user, password) AUTH after it,
    as a city's relay does."""

    def __init__(
        self, *, pipelining: bool = True, tls: ssl.SSLContext | None = None, login: tuple[str, str] | None = None
    ) -> None:
        self.host = "127.0.0.1"
        self.port = free_port()
        self._handler = _Handler(pipelining=pipelining)
        secured = {"tls_context": tls, "require_starttls": True} if tls is not None else {}
        if login is not None:
            secured |= {"authenticator": _authenticator(login), "auth_required": True}
        self._controller = Controller(self._handler, hostname=self.host, port=self.port, **secured)

    @property
    def received(self) -> list[Received]:
        return list(self._handler.received)

    @property
    def attempts(self) -> int:
        return self._handler.attempts

    @property
    def sessions(self) -> int:
        """How many SMTP sessions delivered (or tried to deliver) a message."""
        return len(self._handler.sessions)

    @property
    def quits(self) -> int:
        return self._handler.quits

    @property
    def pipelined(self) -> int:
        """How many mails came with their envelope pipelined (RCPT TO already there when MAIL FROM was answered)."""
        return self._handler.pipelined

    def close_after_each_mail(self) -> None:
        self._handler.close_after_each_mail = True

    def hang_up_on_reuse(self, sessions: int) -> None:
        self._handler.hang_up_on_reuse = sessions

    def fail_next(self, deliveries: int) -> None:
        self._handler.unavailable_for = deliveries

    def refuse_senders(self, mails: int) -> None:
        """Answer 451 to the next ``mails`` MAIL FROM commands."""
        self._handler.senders_refused = mails

    def refuse(self, address: str) -> None:
        self._handler.refused.add(address.lower())

    def accept(self, address: str) -> None:
        """Take mail for ``address`` again (after :meth:`refuse`)."""
        self._handler.refused.discard(address.lower())

    async def start(self) -> None:
        await asyncio.to_thread(self._controller.start)

    async def stop(self) -> None:
        await asyncio.to_thread(self._controller.stop)

    def received_by(self, to: str, *, about: str | None = None) -> list[Received]:
        """The mails to ``to`` (whose subject names ``about``, when given: tests sharing one server tell theirs apart so)."""
        return [
            m for m in self._handler.received if to.lower() in (t.lower() for t in m.to) and (about is None or about in m.subject)
        ]

    async def wait_for_mail(self, to: str, *, about: str | None = None, count: int = 1, timeout: float = 30.0) -> list[Received]:
        """The first ``count`` mails to ``to`` (about ``about``), waiting for them to arrive."""
        deadline = time.monotonic() + timeout
        while True:
            mails = self.received_by(to, about=about)
            if len(mails) >= count:
                return mails[:count]
            if time.monotonic() > deadline:
                seen = [(m.to, m.subject) for m in self._handler.received]
                raise AssertionError(
                    f"{len(mails)} of {count} mail(s) to {to} about {about!r} within {timeout}s; received: {seen}"
                )
            await asyncio.sleep(0.1)
