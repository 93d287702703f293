"""A local mail catcher for people trying Paraaf without a mail server:
an SMTP server (aiosmtpd) that keeps what it receives in memory, and a web
page that shows it with clickable links. Started by ``paraaf run all`` when
``PARAAF_SMTP_HOST`` is unset. Not for production.
"""

import asyncio
import contextlib
import html
import re
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage

import uvicorn
from aiosmtpd.controller import Controller
from fastapi import FastAPI
from fastapi.responses import HTMLResponse

__all__ = ["MailCatcher"]

_LINK = re.compile(r"(https?://[^\s<>\"]+)")


@dataclass(frozen=True)
class Caught:
    received_at: datetime
    to: str
    subject: str
    text: str


class _Handler:
    def __init__(self, mails: deque[Caught]) -> None:
        self.mails = mails

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 - aiosmtpd's hook name
        message = message_from_bytes(envelope.original_content or envelope.content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        body = message.get_body(preferencelist=("plain",))
        self.mails.appendleft(
            Caught(
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
        self._controller = Controller(_Handler(self.mails), hostname=host, port=smtp_port)
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
                for m in self.mails
            )
            return (
                "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>Paraaf mail catcher</title>"
                "<meta http-equiv='refresh' content='5'><style>body{font-family:system-ui;max-width:50rem;margin:auto;"
                "padding:1rem}article{border:1px solid #ccc;border-radius:6px;padding:0 1rem;margin:1rem 0}"
                "pre{white-space:pre-wrap}</style></head><body><h1>Mail caught by Paraaf</h1>"
                + (items or "<p>No mail yet. Submit a document and watch this page.</p>")
                + "</body></html>"
            )

        return app

    async def start(self) -> None:
        await asyncio.to_thread(self._controller.start)
        self._task = asyncio.create_task(self._server.serve())

    async def stop(self) -> None:
        self._server.should_exit = True
        if self._task is not None:
            await self._task
        await asyncio.to_thread(self._controller.stop)
