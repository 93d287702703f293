"""What a system on the other side of RabbitMQ sees: an exclusive queue bound
to an exchange, keeping every message as it arrives."""

import asyncio
import json
import time
from collections.abc import Iterable
from typing import Any

import aio_pika

from shared import amqp

__all__ = ["Listener"]


class Listener:
    """An exclusive queue bound to ``exchange`` with ``keys``; keeps (routing key, JSON body) as they arrive."""

    def __init__(self, amqp_url: str, exchange: str, keys: Iterable[str]) -> None:
        self._url = amqp_url
        self._exchange = exchange
        self._keys = tuple(keys)
        self.received: list[tuple[str, dict[str, Any]]] = []
        self.arrived: list[float] = []  # time.monotonic() as each of ``received`` came in

    async def __aenter__(self) -> "Listener":
        self._connection = await amqp.connect(self._url)
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
            self.arrived.append(time.monotonic())

    def bodies(self, routing_key: str, **fields: Any) -> list[dict[str, Any]]:
        return [
            body
            for key, body in self.received
            if key == routing_key and all(body.get(name) == value for name, value in fields.items())
        ]

    def arrival(self, routing_key: str, **fields: Any) -> float:
        """When the first message with this routing key (and these field values) came in (time.monotonic())."""
        for (key, body), moment in zip(self.received, self.arrived, strict=True):
            if key == routing_key and all(body.get(name) == value for name, value in fields.items()):
                return moment
        raise LookupError(f"no {routing_key} {fields} came in")

    async def wait(self, routing_key: str, *, count: int = 1, timeout: float = 30.0, **fields: Any) -> list[dict[str, Any]]:
        """The first ``count`` messages with this routing key (and these field values)."""
        deadline = time.monotonic() + timeout
        while len(found := self.bodies(routing_key, **fields)) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(found)} of {count} {routing_key} {fields} within {timeout}s; saw {self.received}")
            await asyncio.sleep(0.05)
        return found[:count]
