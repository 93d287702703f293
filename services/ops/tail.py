"""``paraaf tail``: esign.events as they happen, for an operator watching the system.

It connects as the operator's broker user and listens on an exclusive,
auto-delete, server-named queue (``amq.gen-...``) bound to esign.events with
the ``--type`` pattern: the broker does the matching, nothing is left behind
when the tail stops, and the queue takes nothing from the services' queues.
``paraaf broker setup`` gives the operator just the rights for that
(services/admin/broker.py).
"""

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aio_pika

from services.ops.rules import local_time, summary, topic_matches
from shared import amqp
from shared.names import EVENTS_EXCHANGE

__all__ = ["Seen", "follow", "line"]


@dataclass(frozen=True)
class Seen:
    """One event as the tail received it."""

    routing_key: str
    event: dict[str, Any]


def line(seen: Seen, timezone: str) -> tuple[str, str, str, str]:
    """(local time, routing key, short document id, summary): what one printed line says."""
    document = str(seen.event.get("correlation_id") or "")[:8]
    when = local_time(seen.event["occurred_at"], timezone) if seen.event.get("occurred_at") else ""
    return when, seen.routing_key, document, summary(seen.routing_key, seen.event)


def _decoded(message: aio_pika.abc.AbstractIncomingMessage) -> Seen | None:
    try:
        body = json.loads(message.body)
    except ValueError:
        return None  # not an event: the audit log's consumer dead-letters it; a tail just skips it
    return Seen(message.routing_key or "", body) if isinstance(body, dict) else None


async def follow(
    amqp_url: str,
    pattern: str,
    show: Callable[[Seen], Awaitable[None]],
    *,
    count: int | None = None,
    timeout: float | None = None,
    ready: Callable[[], None] = lambda: None,
) -> int:
    """Pass each event on esign.events matching ``pattern`` to ``show`` until ``count`` were shown or ``timeout``
    seconds passed (neither: until cancelled, e.g. Ctrl-C). Returns how many were shown.

    It stops without waiting on the broker: the queue is the connection's own (exclusive, auto-delete), so the
    connection is closed without cancelling the consumer first (aio-pika's queue iterator did, and waited for the
    broker's answer with no time limit: a hung broker kept Ctrl-C from ending the tail); the close itself waits at
    most 2 s for the broker's Close-Ok (aiormq's READER_CLOSE_TIMEOUT). A tail is most wanted when the broker is in
    trouble."""
    shown = 0
    connection = await amqp.connect(amqp_url)
    try:
        channel = await connection.channel()
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        await queue.bind(EVENTS_EXCHANGE, routing_key=pattern)
        arrived: asyncio.Queue[aio_pika.abc.AbstractIncomingMessage] = asyncio.Queue()
        await queue.consume(arrived.put, no_ack=True)
        ready()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while count is None or shown < count:
                    seen = _decoded(await arrived.get())
                    if seen is None or not topic_matches(pattern, seen.routing_key):
                        continue
                    await show(seen)
                    shown += 1
    finally:
        await connection.close()
    return shown
