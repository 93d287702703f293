"""At-least-once delivery, exactly-once effects (DESIGN.md "Delivery guarantees"),
and only from whom a message may come (DESIGN.md "Trust boundaries").

* :func:`process` is the consumer edge: one transaction holds the inbox mark,
  the handler's state change and its outbox rows; the message is acked only
  after that transaction committed, nacked (with a short back-off) when the
  handler failed, and parked in the queue's dead-letter queue at once when it
  can never be processed.
* :func:`event_consumer` accepts a message type only from the broker user of
  a service that owns it (RabbitMQ refuses a ``user_id`` that is not the
  publisher's own); anything else is parked with reason ``untrusted publisher``.
* :class:`Outbox` writes outgoing messages inside the caller's transaction.
* :class:`OutboxRelay` publishes them, persistent, confirmed, with
  ``message_id`` set so consumers can drop duplicates and ``user_id`` set so
  they know who sent them.
"""

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from uuid import UUID

import asyncpg
import structlog
from faststream.rabbit import RabbitBroker
from faststream.rabbit.annotations import RabbitMessage
from pydantic import BaseModel, ValidationError

from shared.contract import COMMAND_TYPES, Command, Outcome
from shared.events import EVENT_TYPES, Event, UnknownEvent
from shared.topology import COMMANDS, DLX, EVENTS, EXCHANGES, OUTCOMES
from shared.wakeup import Wakeup

__all__ = [
    "REPLAYED_ROUTING_KEY",
    "UNTRUSTED",
    "DeadLetters",
    "Handler",
    "Outbox",
    "OutboxRelay",
    "PermanentError",
    "decode_message",
    "event_consumer",
    "message_key",
    "process",
    "publisher_of",
    "routing_key_of",
]

Handler = Callable[[Any, asyncpg.Connection], Awaitable[None]]
UNTRUSTED = "untrusted publisher"


class PermanentError(Exception):
    """A message that can never be processed: dead-letter it now, do not retry."""


def decode_message(routing_key: str, body: bytes) -> BaseModel:
    """The event or command a routing key names, validated."""
    message_type = EVENT_TYPES.get(routing_key) or COMMAND_TYPES.get(routing_key)
    if message_type is None:
        raise UnknownEvent(routing_key)
    return message_type.model_validate_json(body)


def message_key(message: Event | Command) -> UUID:
    return message.event_id if isinstance(message, Event) else message.command_id


REPLAYED_ROUTING_KEY = "x-paraaf-original-routing-key"


def routing_key_of(msg: RabbitMessage) -> str:
    """The routing key the message was published with, also when an operator replayed it from a dead-letter queue."""
    return str((msg.headers or {}).get(REPLAYED_ROUTING_KEY) or msg.raw_message.routing_key or "")


def publisher_of(msg: RabbitMessage) -> str | None:
    """The broker user that published the message (RabbitMQ checked it), or None when it did not say."""
    return msg.raw_message.user_id or None


def _backoff(msg: RabbitMessage) -> float:
    deliveries = int((msg.headers or {}).get("x-delivery-count", 0) or 0)
    return min(0.2 * 2**deliveries, 5.0)


class DeadLetters:
    """Parks a message in its queue's dead-letter queue with the reason, then acks it."""

    def __init__(self, broker: RabbitBroker, user_id: str) -> None:
        self._broker = broker
        self._user_id = user_id

    async def park(self, msg: RabbitMessage, queue: str, reason: str) -> None:
        raw = msg.raw_message
        headers = {
            **(msg.headers or {}),
            "x-paraaf-reason": reason[:1000],
            "x-paraaf-publisher": publisher_of(msg) or "",
            "x-paraaf-exchange": raw.exchange or "",
            REPLAYED_ROUTING_KEY: routing_key_of(msg),
        }
        try:
            await self._broker.publish(
                msg.body,
                exchange=DLX,
                routing_key=queue,
                headers=headers,
                persist=True,
                message_id=msg.message_id,
                content_type=msg.content_type,
                user_id=self._user_id,
                timeout=30,
            )
        except Exception:  # the edge: the broker is away; the message stays in its queue for another try
            structlog.get_logger().exception("could not park the message; returned to the queue")
            await asyncio.sleep(_backoff(msg))
            await msg.nack(requeue=True)
            return
        await msg.ack()


async def process(
    msg: RabbitMessage,
    *,
    pool: asyncpg.Pool,
    consumer: str,
    schema: str,
    key: UUID,
    work: Callable[[asyncpg.Connection], Awaitable[None]],
    dead_letters: DeadLetters,
    after_commit: Callable[[], None] = lambda: None,
) -> None:
    """Run ``work`` once per ``key`` in one transaction with the inbox mark; then ack."""
    log = structlog.get_logger()
    try:
        async with pool.acquire() as conn, conn.transaction():
            first_time = await conn.fetchval(
                f"INSERT INTO {schema}.inbox (consumer, event_id) VALUES ($1, $2)"
                " ON CONFLICT DO NOTHING RETURNING true",
                consumer,
                key,
            )
            if first_time:
                await work(conn)
            else:
                log.info("duplicate ignored")
    except PermanentError as exc:
        log.error("message dead-lettered", reason=str(exc))
        await dead_letters.park(msg, consumer, str(exc))
        return
    except Exception:
        # The edge: whatever went wrong, the message goes back for another try and,
        # past the queue's delivery limit, to its dead-letter queue.
        log.exception("handler failed; message returned to the queue")
        await asyncio.sleep(_backoff(msg))
        await msg.nack(requeue=True)
        return
    await msg.ack()
    after_commit()


def event_consumer(
    *,
    pool: Callable[[], asyncpg.Pool],
    consumer: str,
    schema: str,
    handlers: Mapping[str, Handler],
    trusted: Callable[[str], frozenset[str]],
    dead_letters: DeadLetters,
    after_commit: Callable[[], None] = lambda: None,
) -> Callable[[RabbitMessage], Awaitable[None]]:
    """A subscriber body dispatching events and commands by routing key to ``handlers``,
    each accepted only from a publisher ``trusted(routing_key)`` names."""

    async def on_message(msg: RabbitMessage) -> None:
        routing_key = routing_key_of(msg)
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(routing_key=routing_key)
        log = structlog.get_logger()
        publisher = publisher_of(msg)
        if publisher not in trusted(routing_key):
            log.warning(UNTRUSTED + "; dead-lettered", publisher=publisher, trusted=sorted(trusted(routing_key)))
            await dead_letters.park(msg, consumer, UNTRUSTED)
            return
        handler = handlers.get(routing_key)
        if handler is None:
            log.warning("no handler for routing key; dead-lettered")
            await dead_letters.park(msg, consumer, f"no handler for routing key `{routing_key}`")
            return
        try:
            message = decode_message(routing_key, msg.body)
        except (ValidationError, UnknownEvent) as exc:
            log.error("malformed message dead-lettered", error=str(exc))
            await dead_letters.park(msg, consumer, f"malformed: {exc}")
            return
        structlog.contextvars.bind_contextvars(
            event_id=str(message_key(message)), document_id=str(message.correlation_id)
        )
        await process(
            msg,
            pool=pool(),
            consumer=consumer,
            schema=schema,
            key=message_key(message),
            work=lambda conn: handler(message, conn),
            dead_letters=dead_letters,
            after_commit=after_commit,
        )

    return on_message


class Outbox:
    """Outgoing messages, written in the caller's transaction."""

    def __init__(self, schema: str) -> None:
        self.schema = schema

    async def add(self, conn: asyncpg.Connection, message: BaseModel) -> None:
        if isinstance(message, Event):
            await self.add_raw(conn, EVENTS.name, message.routing_key, message.event_id, message.model_dump_json().encode())
        elif isinstance(message, Outcome):
            await self.add_raw(conn, OUTCOMES.name, message.routing_key, message.outcome_id, message.model_dump_json().encode())
        elif isinstance(message, Command):
            await self.add_raw(conn, COMMANDS.name, message.routing_key, message.command_id, message.model_dump_json().encode())
        else:
            raise TypeError(f"the outbox takes events, outcomes and commands, not {type(message).__name__}")

    async def add_raw(
        self,
        conn: asyncpg.Connection,
        exchange: str,
        routing_key: str,
        message_id: UUID,
        body: bytes,
        headers: Mapping[str, Any] | None = None,
    ) -> None:
        await conn.execute(
            f"INSERT INTO {self.schema}.outbox (message_id, exchange, routing_key, body, headers)"
            " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (message_id) DO NOTHING",
            message_id,
            exchange,
            routing_key,
            body,
            dict(headers or {}),
        )


class OutboxRelay:
    """Publishes outbox rows in order, persistent and confirmed, as ``user_id``, then deletes them."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        broker: RabbitBroker,
        schema: str,
        *,
        user_id: str,
        batch: int = 100,
        poll_seconds: float = 1.0,
    ) -> None:
        self._pool = pool
        self._broker = broker
        self._schema = schema
        self._user_id = user_id
        self._batch = batch
        self._poll = poll_seconds
        self._wake = Wakeup()

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        log = structlog.get_logger()
        failures = 0
        while True:
            try:
                sent = await self.publish_pending()
                failures = 0
            except Exception as exc:  # the relay's edge: broker or database away; keep the rows, retry
                failures += 1
                log.warning("outbox relay could not publish; will retry", error=repr(exc), failures=failures)
                await asyncio.sleep(min(0.5 * 2**failures, 10.0))
                continue
            if sent < self._batch:
                await self._wake.sleep(self._poll)

    async def publish_pending(self) -> int:
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                f"SELECT id, message_id, exchange, routing_key, body, headers FROM {self._schema}.outbox"
                " ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
                self._batch,
            )
            if not rows:
                return 0
            await asyncio.gather(*(self._publish(row) for row in rows))
            await conn.execute(
                f"DELETE FROM {self._schema}.outbox WHERE id = ANY($1::bigint[])", [r["id"] for r in rows]
            )
        return len(rows)

    async def _publish(self, row: asyncpg.Record) -> None:
        await self._broker.publish(
            row["body"],
            exchange=EXCHANGES[row["exchange"]],
            routing_key=row["routing_key"],
            persist=True,
            mandatory=True,
            message_id=str(row["message_id"]),
            content_type="application/json",
            headers=row["headers"] or None,
            user_id=self._user_id,
            timeout=30,
        )
