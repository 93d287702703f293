"""A local mail catcher for people trying Paraaf without a mail server:
an SMTP server (aiosmtpd) that keeps what it receives in memory, and a web
page that shows it with clickable links. Started by ``paraaf run all`` when
``PARAAF_SMTP_HOST`` is unset. Not for production.

``/mails.json`` gives the same mails to a program (``paraaf demo`` reads its
signing links there), and ``POST /outage`` makes the SMTP server answer 421
"try again later" for a while, as a mail server that is down does: what the
notifier does then is its own, real retrying.
"""

import asyncio
import contextlib
import html
import itertools
import re
import time
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage

import uvicorn
from aiosmtpd.controller import Controller
from fastapi import FastAPI, Query
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field

__all__ = ["MailCatcher"]

_LINK = re.compile(r"(https?://[^\s<>\"]+)")


@dataclass(frozen=True)
class Caught:
    number: int  # 1, 2, 3... in the order received: a reader asks for what came after the last one it saw
    received_at: datetime
    to: str
    subject: str
    text: str


class Outage(BaseModel):
    seconds: float = Field(gt=0, le=600)


class _Handler:
    def __init__(self, mails: deque[Caught]) -> None:
        self.mails = mails
        self.numbers = itertools.count(1)
        self.down_until = 0.0  # time.monotonic(): answer 421 until then
        self.refused = 0

    async def handle_EHLO(self, server, session, envelope, hostname, responses) -> list[str]:  # noqa: N802 - aiosmtpd's hook name
        """Offer PIPELINING (RFC 2920), as real mail servers do, so the notifier sends here as it does to them."""
        session.host_name = hostname
        return [*responses[:-1], "250-PIPELINING", responses[-1]]

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 - aiosmtpd's hook name
        if time.monotonic() < self.down_until:
            self.refused += 1
            return "421 4.3.2 Service not available (a mail server outage, played by the mail catcher), try again later"
        message = message_from_bytes(envelope.original_content or envelope.content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        body = message.get_body(preferencelist=("plain",))
        self.mails.appendleft(
            Caught(
                number=next(self.numbers),
                received_at=datetime.now(UTC),
                to=", ".join(envelope.rcpt_tos),
                subject=str(message["Subject"]),
                text=body.get_content() if body else "",
            )
        )
        return "250 OK"


class MailCatcher:
    def __init__(self, host: str = "127.0.0.1", smtp_port: int = 1025, web_port: int = 8025) -> None:
        self.mails: deque[Caught] = deque(maxlen=500)
        self.smtp_port = smtp_port
        self.web_url = f"http://{host}:{web_port}/"
        self.host = host
        self._handler = _Handler(self.mails)
        self._controller = Controller(self._handler, hostname=host, port=smtp_port)
        self._server = uvicorn.Server(uvicorn.Config(self._app(), host=host, port=web_port, log_config=None))
        self._server.capture_signals = contextlib.nullcontext  # the supervisor owns the signals
        self._task: asyncio.Task[None] | None = None

    def _app(self) -> FastAPI:
        app = FastAPI(title="Paraaf mail catcher")

        @app.get("/", response_class=HTMLResponse)
        async def inbox() -> str:
            items = "".join(
                f"<article><h2>{html.escape(m.subject)}</h2><p>To {html.escape(m.to)} at"
                f" {m.received_at:%Y-%m-%d %H:%M:%S} UTC</p><pre>"
                + _LINK.sub(r'<a href="\1">\1</a>', html.escape(m.text))
                + "</pre></article>"
                for m in self.mails.copy()  # the SMTP thread may add one meanwhile: iterate a snapshot
            )
            return (
                "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>Paraaf mail catcher</title>"
                "<meta http-equiv='refresh' content='5'><style>body{font-family:system-ui;max-width:50rem;margin:auto;"
                "padding:1rem}article{border:1px solid #ccc;border-radius:6px;padding:0 1rem;margin:1rem 0}"
                "pre{white-space:pre-wrap}</style></head><body><h1>Mail caught by Paraaf</h1>"
                + (items or "<p>No mail yet. Submit a document and watch this page.</p>")
                + "</body></html>"
            )

        @app.get("/mails.json")
        async def mails(after: int = Query(0, ge=0, description="only mails numbered above this")) -> dict[str, object]:
            """The mails received after number ``after``, oldest first, and how many deliveries the outage refused."""
            return {
                "mails": [vars(m) for m in reversed(self.mails.copy()) if m.number > after],
                "refused": self._handler.refused,
                "down": time.monotonic() < self._handler.down_until,
            }

        @app.post("/outage")
        async def outage(body: Outage) -> dict[str, float]:
            """Play a mail server that is down: every delivery for the next ``seconds`` gets 421, try again later."""
            self._handler.down_until = time.monotonic() + body.seconds
            return {"seconds": body.seconds}

        return app

    async def start(self) -> None:
        await asyncio.to_thread(self._controller.start)
        self._task = asyncio.create_task(self._server.serve())

    async def stop(self) -> None:
        self._server.should_exit = True
        if self._task is not None:
            await self._task
        await asyncio.to_thread(self._controller.stop)
