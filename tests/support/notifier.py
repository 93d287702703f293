"""The notifier inside the test process, with a clock the test moves: days
pass when the test says so, while retries and timeouts still run in real
time. Plus a listener that sees what the services publish.
"""

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import aio_pika
from faststream import TestApp

from tests.support.smtp import SmtpServer

__all__ = ["FakeClock", "Listener", "notifier_settings", "running_notifier"]


class FakeClock:
    """Real time shifted by an offset the test controls."""

    def __init__(self, starts_at: datetime) -> None:
        self._offset = starts_at - datetime.now(UTC)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self._offset

    def advance(self, delta: timedelta) -> None:
        self._offset += delta

    def move_to(self, moment: datetime) -> None:
        self._offset = moment - datetime.now(UTC)


def notifier_settings(database_url: str, amqp_url: str, smtp: SmtpServer, port: int, **changes: Any) -> Any:
    from services.notifier.config import NotifierSettings

    return NotifierSettings(
        database_url=database_url,
        amqp_url=amqp_url,
        smtp_host=smtp.host,
        smtp_port=smtp.port,
        notifier_port=port,
        scheduler_seconds=0.1,
        mail_retry_seconds=0.2,
        mail_retry_max_seconds=1.0,
        moved_notice_window_seconds=1.0,
        **changes,
    )


@asynccontextmanager
async def running_notifier(settings: Any, clock: Callable[[], datetime]) -> AsyncIterator[None]:
    from services.notifier.main import create_app

    async with TestApp(create_app(settings, clock=clock)):
        yield


class Listener:
    """An exclusive queue bound to ``exchange`` with ``keys``; keeps (routing key, JSON body) as they arrive."""

    def __init__(self, amqp_url: str, exchange: str, keys: Iterable[str]) -> None:
        self._url = amqp_url
        self._exchange = exchange
        self._keys = tuple(keys)
        self.received: list[tuple[str, dict[str, Any]]] = []

    async def __aenter__(self) -> "Listener":
        self._connection = await aio_pika.connect(self._url)
        channel = await self._connection.channel()
        exchange = await channel.get_exchange(self._exchange, ensure=True)
        queue = await channel.declare_queue(exclusive=True)
        for key in self._keys:
            await queue.bind(exchange, key)
        await queue.consume(self._on_message)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._connection.close()

    async def _on_message(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        async with message.process():
            self.received.append((message.routing_key or "", json.loads(message.body)))

    def bodies(self, routing_key: str, **fields: Any) -> list[dict[str, Any]]:
        return [
            body
            for key, body in self.received
            if key == routing_key and all(body.get(name) == value for name, value in fields.items())
        ]

    async def wait(self, routing_key: str, *, count: int = 1, timeout: float = 30.0, **fields: Any) -> list[dict[str, Any]]:
        """The first ``count`` messages with this routing key (and these field values)."""
        deadline = time.monotonic() + timeout
        while len(found := self.bodies(routing_key, **fields)) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(found)} of {count} {routing_key} {fields} within {timeout}s; saw {self.received}")
            await asyncio.sleep(0.05)
        return found[:count]
