"""At-least-once delivery, exactly-once effects (DESIGN.md "Delivery guarantees"),
and only from whom a message may come (DESIGN.md "Trust boundaries").

* :func:`process` is the consumer edge: one transaction holds the inbox mark,
  the handler's state change and its outbox rows; the message is acked only
  after that transaction committed, nacked (with a short back-off) when the
  handler failed, and parked in the queue's dead-letter queue at once when it
  can never be processed. A delivery that fails on the last try the delivery
  limit allows is parked by the consumer itself, with the handler's error in
  header ``x-paraaf-error`` (the broker's own dead-lettering would keep no
  reason), so ``paraaf dlq show`` can say why and ``replay`` knows it may retry.
* :func:`event_consumer` accepts a message type only from the broker user of
  a service that owns it (RabbitMQ refuses a ``user_id`` that is not the
  publisher's own); anything else is parked with reason ``untrusted publisher``.
* :class:`BatchingConsumer` is a :class:`Consumer` whose accepted messages are
  written many at a time (one transaction for a whole batch), for a queue where
  one transaction per message is the ceiling: the audit log's.
* :class:`Outbox` writes outgoing messages inside the caller's transaction.
* :class:`OutboxRelay` publishes them, persistent, confirmed, with
  ``message_id`` set so consumers can drop duplicates and ``user_id`` set so
  they know who sent them.
"""

import asyncio
import collections
import contextlib
import contextvars
import math
import time
import weakref
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from uuid import UUID

import asyncpg
import structlog
from faststream.rabbit import RabbitBroker
from faststream.rabbit.annotations import RabbitMessage
from pydantic import BaseModel, ValidationError

from shared.contract import Command
from shared.delivery import Delivery
from shared.events import Event
from shared.metrics import HANDLER_SECONDS, MESSAGES_CONSUMED, MESSAGES_PUBLISHED
from shared.names import ERROR, REASON, REPLAYED_ROUTING_KEY, UNTRUSTED
from shared.outbox import Outbox, OutboxRow, TransactionStore, gathered
from shared.topology import DLX, EXCHANGES
from shared.wakeup import Wakeup

__all__ = [
    "ERROR",
    "REASON",
    "REPLAYED_ROUTING_KEY",
    "UNTRUSTED",
    "BatchHandler",
    "Batching",
    "BatchingConsumer",
    "Consumer",
    "DeadLetters",
    "Delivery",
    "Handler",
    "Outbox",
    "OutboxRelay",
    "PermanentError",
    "Store",
    "StoreFactory",
    "TransactionStore",
    "Unaccepted",
    "error_of",
    "message_key",
    "process",
    "publisher_of",
    "routing_key_of",
    "routes",
    "with_delivery",
]

Handler = Callable[[Any, asyncpg.Connection], Awaitable[None]]


class PermanentError(Exception):
    """A message that can never be processed: dead-letter it now, do not retry."""


def message_key(message: Event | Command) -> UUID:
    return message.event_id if isinstance(message, Event) else message.command_id


def routing_key_of(msg: RabbitMessage) -> str:
    """The routing key the message was published with, also when an operator replayed it from a dead-letter queue."""
    return str((msg.headers or {}).get(REPLAYED_ROUTING_KEY) or msg.raw_message.routing_key or "")


def publisher_of(msg: RabbitMessage) -> str | None:
    """The broker user that published the message (RabbitMQ checked it), or None when it did not say."""
    return msg.raw_message.user_id or None


def _redeliveries(msg: RabbitMessage) -> int:
    """How often the broker delivered this message before (quorum queues count it in ``x-delivery-count``)."""
    return int((msg.headers or {}).get("x-delivery-count", 0) or 0)


def _backoff(msg: RabbitMessage) -> float:
    return min(0.2 * 2 ** _redeliveries(msg), 5.0)


def _last_try(msg: RabbitMessage, delivery_limit: int | None) -> bool:
    """Whether the queue's delivery limit allows no further delivery after this one."""
    return delivery_limit is not None and _redeliveries(msg) >= delivery_limit


def error_of(exc: BaseException) -> str:
    return f"{exc.__class__.__name__}: {exc}"[:1000]


class DeadLetters:
    """Parks a message in its queue's dead-letter queue with the reason, then acks it."""

    def __init__(self, broker: RabbitBroker, user_id: str) -> None:
        self._broker = broker
        self._user_id = user_id

    async def park(self, msg: RabbitMessage, queue: str, reason: str, *, error: str | None = None) -> bool:
        """Whether it was parked; if the broker is away it goes back to its queue for another try instead."""
        raw = msg.raw_message
        headers = {
            **(msg.headers or {}),
            REASON: reason[:1000],
            **({ERROR: error} if error else {}),
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
            return False
        await msg.ack()
        return True


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
    delivery_limit: int | None = None,
) -> str:
    """Run ``work`` once per ``key`` in one transaction with the inbox mark; then ack. Returns the outcome
    (one of ``metrics.OUTCOMES``) for the metrics."""
    log = structlog.get_logger()
    try:
        first_time = await _once(pool, schema, consumer, key, work)
    except PermanentError as exc:
        log.error("message dead-lettered", reason=str(exc))
        return "parked" if await dead_letters.park(msg, consumer, str(exc)) else "retried"
    except Exception as exc:  # the edge: whatever went wrong, another try or, on the last, the dead-letter queue
        if database_away(exc):  # a try spent while no database answers would be lost: the message waits for it
            await until_database_answers(pool)
        return await _failed(msg, exc, consumer, dead_letters, delivery_limit)
    await msg.ack()
    after_commit()
    return "handled" if first_time else "duplicate"


async def _once(
    pool: asyncpg.Pool, schema: str, consumer: str, key: UUID, work: Callable[[asyncpg.Connection], Awaitable[None]]
) -> bool:
    """The inbox mark and, the first time, ``work``, in one transaction whose outbox rows go in with one statement
    and, committed, to the relay (before the relay runs, its first sweep finds them); whether it was the first time.

    The transaction opens with its inbox mark in one round trip (``BEGIN`` alone would be another, a message's
    costliest after the handler's own): so it is begun and ended here, not by asyncpg's ``transaction()``, which
    ``work`` therefore must not use."""
    async with pool.acquire() as conn:
        with gathered(conn) as outgoing:
            try:
                first_time = await _begin_marked(conn, schema, consumer, key)
                if first_time:
                    await work(conn)
                else:
                    structlog.get_logger().info("duplicate ignored")
                await outgoing.write()
                await conn.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(Exception):  # not rolled back here (say, a cancelled query), the pool does it
                    if not conn.is_closed() and conn.is_in_transaction():
                        await conn.execute("ROLLBACK")
                raise
            outgoing.committed()
            return first_time


async def _begin_marked(conn: asyncpg.Connection, schema: str, consumer: str, key: UUID) -> bool:
    """Begin the transaction and mark ``key`` in the inbox, in one simple query (its values are a queue name of
    ours and a UUID, written as literals); whether the mark is new."""
    status = await conn.execute(_BEGIN_MARK.format(schema=schema, consumer=consumer.replace("'", "''"), key=UUID(str(key))))
    return status == "INSERT 0 1"


_BEGIN_MARK = "BEGIN; INSERT INTO {schema}.inbox (consumer, event_id) VALUES ('{consumer}', '{key}') ON CONFLICT DO NOTHING"


# What PostgreSQL going away looks like to a handler: its connection broken or refused, the server shutting down or
# still starting, or (a failover under way) no host of PARAAF_DATABASE_URL that takes writes yet.
_DATABASE_AWAY = (
    OSError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.ConnectionFailureError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.ReadOnlySQLTransactionError,
    asyncpg.exceptions.TargetServerAttributeNotMatched,
)


def database_away(exc: BaseException) -> bool:
    return isinstance(exc, _DATABASE_AWAY)


async def until_database_answers(pool: asyncpg.Pool, *, longest_wait: float = 2.0) -> float:
    """Wait until a connection of ``pool`` writes again (after a restart, or a standby's promotion); the seconds waited."""
    started, tries = time.monotonic(), 0
    while True:
        try:
            async with pool.acquire(timeout=10) as conn:
                if not await conn.fetchval("SELECT pg_is_in_recovery()"):
                    return time.monotonic() - started
        except Exception as exc:  # the wait's edge: anything but an answer means not yet
            if not database_away(exc) and not isinstance(exc, TimeoutError | asyncpg.InterfaceError):
                raise
        tries += 1
        if tries == 1:
            structlog.get_logger().warning("the database does not answer; messages wait for it")
        await asyncio.sleep(min(0.1 * 2**tries, longest_wait))


async def _failed(msg: RabbitMessage, exc: Exception, queue: str, dead_letters: DeadLetters, delivery_limit: int | None) -> str:
    """Back to the queue for another try; on the last try the limit allows, parked with the error instead."""
    log = structlog.get_logger()
    if _last_try(msg, delivery_limit):
        tries = _redeliveries(msg) + 1
        log.exception("handler failed on its last try; message dead-lettered", tries=tries)
        parked = await dead_letters.park(msg, queue, f"handler failed {tries} times", error=error_of(exc))
        return "dead_lettered" if parked else "retried"
    log.exception("handler failed; message returned to the queue")
    await asyncio.sleep(_backoff(msg))
    await msg.nack(requeue=True)
    return "retried"


class Store(Protocol):
    """What every service's store offers its handlers beyond its own queries: sending messages with its changes."""

    async def publish(self, message: BaseModel) -> None: ...


Handler = Callable[..., Awaitable[None]]  # (the message, the service's store in the message's transaction[, its Delivery])
StoreFactory = Callable[[asyncpg.Connection], Any]
Unaccepted = Callable[["Consumer", RabbitMessage, str], Awaitable[None]]  # (the edge, the message, why): ack, nack or park it


def delivery_of(msg: RabbitMessage) -> Delivery:
    return Delivery(routing_key_of(msg), msg.body, publisher_of(msg), msg.message_id, msg.raw_message.content_type)


def with_delivery(handler: Handler) -> Handler:
    """Mark a handler that is called as ``handler(message, store, delivery)``."""
    handler.wants_delivery = True  # type: ignore[attr-defined]
    return handler


def routes(message_type: type[BaseModel]) -> Callable[[str], bool]:
    """Which routing keys carry ``message_type``: its own, or any ``<prefix><source>`` for a source's request
    (``submit.``, ``withdraw.``, ``status.``)."""
    key = getattr(message_type, "routing_key", None)
    if key:
        return lambda routing_key: routing_key == key
    prefix = getattr(message_type, "routing_prefix", "submit.")
    return lambda routing_key: routing_key.startswith(prefix)


def inbox_key(message: BaseModel, msg: RabbitMessage) -> UUID:
    return message_key(message)  # type: ignore[arg-type]


# The message as delivered, from the decoder to the typed call of the same delivery (see Consumer.attach).
_DELIVERED: contextvars.ContextVar[RabbitMessage] = contextvars.ContextVar("delivered")


class Consumer:
    """The edge of one queue. Each message type is its own typed handler (so the AsyncAPI document lists every
    message with its payload); a message reaches it only when its publisher owns it and its body is that
    message. Everything else goes to ``unaccepted``: by default parked in the queue's dead-letter queue with why."""

    def __init__(
        self,
        *,
        queue: str,
        handlers: Mapping[type[BaseModel], Handler],
        pool: Callable[[], asyncpg.Pool],
        schema: str,
        store: StoreFactory,
        trusted: Callable[[str], frozenset[str]],
        dead_letters: DeadLetters,
        after_commit: Callable[[], None] = lambda: None,
        key: Callable[[BaseModel, RabbitMessage], UUID] = inbox_key,
        unaccepted: Unaccepted | None = None,
        max_body: int | None = None,
        delivery_limit: int | None = None,
    ) -> None:
        self.queue = queue
        self._delivery_limit = delivery_limit  # the queue's x-delivery-limit: its last try is parked here, with the error
        self._max_body = max_body  # a longer body goes to ``unaccepted`` unread: decoding it would double it in memory
        self._handlers = handlers
        self._pool = pool
        self._schema = schema
        self._store = store
        self._trusted = trusted
        self._dead_letters = dead_letters
        self._after_commit = after_commit
        self._key = key
        self._unaccepted = unaccepted or _park
        self._decoded: dict[int, BaseModel] = {}

    def attach(self, subscriber: Any) -> None:
        """Register one call per message type, then the call for everything else, on a FastStream subscriber. The
        typed calls take the message alone: FastStream resolves a ``RabbitMessage`` parameter with a synchronous
        function that fast_depends runs in a worker thread, a thread hop per message (~6 % of the signer's event
        loop in the pipeline bench). The decoder hands the delivery to the call instead (both run in its task)."""
        for message_type, handler in self._handlers.items():
            subscriber(
                _typed_alone(message_type, self._runner(handler)), filter=self._accepts(message_type), decoder=self._keep_delivery
            )
        # Its body is never decoded by FastStream: an unreadable one must reach us, not fail in a decoder.
        subscriber(self._rest, decoder=_raw_body)

    async def _keep_delivery(self, msg: RabbitMessage) -> BaseModel:
        _DELIVERED.set(msg)
        return await self._decoder(msg)

    def _accepts(self, message_type: type[BaseModel]) -> Callable[[RabbitMessage], Awaitable[bool]]:
        carried = routes(message_type)

        async def accepts(msg: RabbitMessage) -> bool:
            routing_key = routing_key_of(msg)
            if not carried(routing_key) or publisher_of(msg) not in self._trusted(routing_key) or self._oversized(msg):
                return False
            try:
                self._decoded[id(msg)] = message_type.model_validate_json(msg.body)
            except ValidationError:
                return False
            return True

        return accepts

    def _oversized(self, msg: RabbitMessage) -> bool:
        return self._max_body is not None and len(msg.body) > self._max_body

    async def _decoder(self, msg: RabbitMessage) -> BaseModel:
        return self._decoded.pop(id(msg))

    def _runner(self, handler: Handler) -> Callable[[BaseModel, RabbitMessage], Awaitable[None]]:
        extra = (lambda msg: (delivery_of(msg),)) if getattr(handler, "wants_delivery", False) else (lambda msg: ())

        async def run(message: BaseModel, msg: RabbitMessage) -> None:
            key = self._key(message, msg)
            structlog.contextvars.clear_contextvars()
            structlog.contextvars.bind_contextvars(
                routing_key=routing_key_of(msg), event_id=str(key), document_id=str(getattr(message, "correlation_id", ""))
            )
            await self.once(msg, key, lambda store: handler(message, store, *extra(msg)), message=type(message).__name__)

        return run

    async def once(
        self, msg: RabbitMessage, key: UUID, work: Callable[[Any], Awaitable[None]], *, message: str = "unaccepted"
    ) -> None:
        """``work(store)`` once per ``key``, in one transaction with the inbox mark; then ack (see :func:`process`).
        ``message`` names its type in the metrics."""
        started = time.perf_counter()
        outcome = await process(
            msg,
            pool=self._pool(),
            consumer=self.queue,
            schema=self._schema,
            key=key,
            work=lambda conn: work(self._store(conn)),
            dead_letters=self._dead_letters,
            after_commit=self._after_commit,
            delivery_limit=self._delivery_limit,
        )
        HANDLER_SECONDS.labels(self.queue, message).observe(time.perf_counter() - started)
        MESSAGES_CONSUMED.labels(self.queue, message, outcome).inc()

    async def _rest(self, msg: RabbitMessage) -> None:
        """Anything no typed handler took: from a publisher that does not own it, for no handler, or malformed."""
        structlog.contextvars.clear_contextvars()
        routing_key = routing_key_of(msg)
        structlog.contextvars.bind_contextvars(routing_key=routing_key)
        self._decoded.pop(id(msg), None)
        await self._unaccepted(self, msg, self.why_unaccepted(msg))

    def why_unaccepted(self, msg: RabbitMessage) -> str:
        routing_key = routing_key_of(msg)
        if publisher_of(msg) not in self._trusted(routing_key):
            return UNTRUSTED
        if self._oversized(msg):
            return f"too large: {len(msg.body)} bytes, over the {self._max_body} this queue reads"
        for message_type in self._handlers:
            if routes(message_type)(routing_key):
                try:
                    message_type.model_validate_json(msg.body)
                except ValidationError as exc:
                    return f"malformed: {exc}"
                return "malformed"
        return f"no handler for routing key `{routing_key}`"

    async def park(self, msg: RabbitMessage, reason: str) -> None:
        structlog.get_logger().warning("message dead-lettered", reason=reason[:300], publisher=publisher_of(msg))
        parked = await self._dead_letters.park(msg, self.queue, reason)
        MESSAGES_CONSUMED.labels(self.queue, "unaccepted", "parked" if parked else "retried").inc()


async def _raw_body(msg: RabbitMessage) -> bytes:
    return msg.body


async def _park(consumer: Consumer, msg: RabbitMessage, why: str) -> None:
    await consumer.park(msg, why)


def _typed(
    message_type: type[BaseModel], run: Callable[[BaseModel, RabbitMessage], Awaitable[None]]
) -> Callable[..., Awaitable[None]]:
    """A handler FastStream can document: its first parameter is ``message_type``."""

    async def call(message: BaseModel, msg: RabbitMessage) -> None:
        await run(message, msg)

    call.__annotations__ = {"message": message_type, "msg": RabbitMessage, "return": None}
    call.__name__ = message_type.__name__
    call.__qualname__ = message_type.__name__
    call.__doc__ = (message_type.__doc__ or message_type.__name__).strip()
    return call


BatchHandler = Callable[
    [Sequence[tuple[Any, Delivery]], Any], Awaitable[None]
]  # (new messages in order, each with its Delivery; the store)


@dataclass(frozen=True)
class Batching:
    """Accepted messages written together: at most ``size`` in one transaction, gathered for at most ``wait``
    seconds after the first; ``handler`` makes the changes of a whole batch."""

    handler: BatchHandler
    size: int = 500
    wait: float = 0.02


@dataclass(frozen=True)
class _Pending:
    message: BaseModel
    msg: RabbitMessage
    key: UUID
    written: "asyncio.Future[str | None]"  # its outcome once the batch committed; None: the batch failed


_MARK_MANY = (
    "WITH marked AS (INSERT INTO {schema}.inbox (consumer, event_id) SELECT $1, unnest($2::uuid[])"
    " ON CONFLICT DO NOTHING RETURNING event_id) SELECT coalesce(array_agg(event_id), '{{}}') FROM marked"
)




class _Settled:
    """The delivery tags of one channel that were acked, rejected or parked: every one up to ``upto``, and
    ``above``. RabbitMQ numbers a channel's deliveries 1, 2, 3 ...: an ack with ``multiple`` up to a tag is safe
    only when every delivery before it is settled already."""

    def __init__(self) -> None:
        self.upto = 0
        self.above: set[int] = set()

    def add(self, *tags: int) -> int:
        """Mark ``tags`` settled; returns the tag up to which every delivery now is."""
        self.above.update(tags)
        while self.upto + 1 in self.above:
            self.upto += 1
            self.above.discard(self.upto)
        return self.upto


class BatchingConsumer(Consumer):
    """A :class:`Consumer` that writes what its filters accepted in batches. One transaction holds a batch's
    inbox marks and ``batching.handler``'s changes for the messages marked the first time (a duplicate, in the
    same batch or an earlier one, changes nothing); after that commit the batch is acked, with one ack for as
    many of its messages as every delivery before them is settled (one ack per message costs a quorum queue
    more than the rest of its work), each of the others alone. When a batch fails, each of its messages is
    processed alone, exactly as a plain Consumer does, so a bad one is retried and dead-lettered by itself and
    the others are written once. :meth:`run` writes the batches; ``Service.loop`` runs it. The queue's prefetch
    must exceed ``batching.size`` for batches to fill: each delivery is a task of its own (aio-pika), and waits
    here until its batch is written. An ``unaccepted`` option must settle (ack, reject or park) what it gets."""

    def __init__(self, *, batching: Batching, **options: Any) -> None:
        super().__init__(**options)
        self._batching = batching
        self._pending: asyncio.Queue[_Pending] = asyncio.Queue()
        self._gathered: list[_Pending] = []
        self._settled: weakref.WeakKeyDictionary[Any, _Settled] = weakref.WeakKeyDictionary()  # by channel

    async def _rest(self, msg: RabbitMessage) -> None:
        """Anything no typed handler took: from a publisher that does not own it, for no handler, or malformed."""
        await super()._rest(msg)
        self._settle(msg)  # only once it was settled: an exception leaves it unsettled

    def _settle(self, msg: RabbitMessage, *more: RabbitMessage) -> int:
        raw = msg.raw_message
        settled = self._settled.setdefault(raw.channel, _Settled())
        return settled.add(raw.delivery_tag, *(m.raw_message.delivery_tag for m in more))

    async def _ack(self, batch: Sequence[_Pending]) -> None:
        """Ack a written batch: up to the highest tag before which every delivery is settled with one ack, the
        rest one by one. Should the channel be gone, the broker delivers them again and the inbox drops them."""
        by_channel: dict[Any, list[RabbitMessage]] = {}
        for pending in batch:
            by_channel.setdefault(pending.msg.raw_message.channel, []).append(pending.msg)
        try:
            for messages in by_channel.values():
                upto = self._settle(*messages)
                covered = [m for m in messages if m.raw_message.delivery_tag <= upto]
                if covered:
                    await max(covered, key=lambda m: m.raw_message.delivery_tag).raw_message.ack(multiple=True)
                for msg in messages:
                    if msg.raw_message.delivery_tag > upto:
                        await msg.ack()
        except Exception:  # the ack's edge: a closed channel; its deliveries come again
            structlog.get_logger().warning("batch written but not acked; its messages come again", exc_info=True)

    def _runner(self, handler: Handler) -> Callable[[BaseModel, RabbitMessage], Awaitable[None]]:
        alone = super()._runner(handler)

        async def run(message: BaseModel, msg: RabbitMessage) -> None:
            started = time.perf_counter()
            pending = _Pending(message, msg, self._key(message, msg), asyncio.get_running_loop().create_future())
            self._pending.put_nowait(pending)
            outcome = await pending.written
            if outcome is None:
                await alone(message, msg)  # it settles the message, or raises and leaves it unsettled
                self._settle(msg)
                return
            HANDLER_SECONDS.labels(self.queue, type(message).__name__).observe(time.perf_counter() - started)
            MESSAGES_CONSUMED.labels(self.queue, type(message).__name__, outcome).inc()

        return run

    async def run(self) -> None:
        """Gather a batch, write it, tell its messages; again. Cancelled, the messages waiting stay unacked
        (the broker delivers them again)."""
        batch: list[_Pending] = []
        try:
            while True:
                await self._gather()
                batch, self._gathered = self._gathered, []
                await self._write(batch)
        except asyncio.CancelledError:
            while not self._pending.empty():
                self._gathered.append(self._pending.get_nowait())
            for pending in [*batch, *self._gathered]:
                if not pending.written.done():
                    pending.written.cancel()
            self._gathered = []
            raise

    async def _gather(self) -> None:
        """The first message to wait, then what waits or comes within ``wait`` of it, up to ``size``."""
        loop = asyncio.get_running_loop()
        self._gathered.append(await self._pending.get())
        deadline = loop.time() + self._batching.wait
        while len(self._gathered) < self._batching.size:
            if not self._pending.empty():
                self._gathered.append(self._pending.get_nowait())
                continue
            try:
                self._gathered.append(await asyncio.wait_for(self._pending.get(), deadline - loop.time()))
            except TimeoutError:
                return

    async def _write(self, batch: list[_Pending]) -> None:
        try:
            outcomes: Sequence[str | None] = await self._commit(batch)
        except Exception:  # the batch's edge: each of its messages is processed alone, with its own retries
            structlog.get_logger().warning(
                "batch not written; its messages are processed one by one", messages=len(batch), exc_info=True
            )
            outcomes = [None] * len(batch)
        else:
            await self._ack(batch)
            self._after_commit()
        for pending, outcome in zip(batch, outcomes, strict=True):
            if not pending.written.done():  # its task may have been cancelled meanwhile: then it is not acked
                pending.written.set_result(outcome)

    async def _commit(self, batch: list[_Pending]) -> list[str]:
        """The batch in one transaction (see :meth:`_changes`); its outbox rows go in with one statement and,
        committed, to the relay."""
        async with self._pool().acquire() as conn:
            with gathered(conn) as outgoing:
                async with conn.transaction():
                    outcomes = await self._changes(conn, batch)
                    await outgoing.write()
                outgoing.committed()
                return outcomes

    async def _changes(self, conn: asyncpg.Connection, batch: list[_Pending]) -> list[str]:
        """The inbox marks, then the changes of the messages marked just now."""
        # Marked in key order: two processes writing batches that share redelivered copies lock the same
        # inbox rows in the same order, and wait for each other instead of deadlocking.
        keys = sorted({p.key for p in batch})
        marked = set(await conn.fetchval(_MARK_MANY.format(schema=self._schema), self.queue, keys))
        new, outcomes = [], []
        for pending in batch:
            first = pending.key in marked
            marked.discard(pending.key)  # a second copy in this very batch is a duplicate too
            outcomes.append("handled" if first else "duplicate")
            if first:
                new.append((pending.message, delivery_of(pending.msg)))
        if new:
            await self._batching.handler(new, self._store(conn))
        if len(new) < len(batch):
            structlog.get_logger().info("duplicates ignored", duplicates=len(batch) - len(new))
        return outcomes


def _typed_alone(
    message_type: type[BaseModel], run: Callable[[BaseModel, RabbitMessage], Awaitable[None]]
) -> Callable[..., Awaitable[None]]:
    """As :func:`_typed`, the delivery taken from the decoder rather than from FastStream's context."""

    async def call(message: BaseModel) -> None:
        await run(message, _DELIVERED.get())

    documented = _typed(message_type, run)
    call.__annotations__ = {"message": message_type, "return": None}
    call.__name__, call.__qualname__, call.__doc__ = documented.__name__, documented.__qualname__, documented.__doc__
    return call


# A timed sweep leaves rows younger than this to the relay they were handed to (here, or in another process).
_SETTLED_SECONDS = 1.0


class OutboxRelay:
    """Publishes outbox rows, persistent and confirmed, as ``user_id``, then deletes them.

    The rows a consumer's transaction committed are handed to it (``outbox``: :meth:`Outbox.hand_to`): it
    publishes them in the order they were committed, holding no transaction over the confirms, and deletes what
    it published every ``delete_seconds`` with one statement. Rows nobody handed it (an HTTP request's, a
    scheduler's, ones whose publish failed, a crashed process's) it finds by sweeping the table in order, its rows
    locked against other processes' relays: all of them at start, when :meth:`wake` says some were written and
    after a failure; every ``poll_seconds`` those older than a second (younger ones are a relay's in hand).
    A row a sweep sent is not sent again when handed, nor one sent and not yet deleted. At-least-once all along:
    a row is deleted only after its publish was confirmed, so a crash at any point sends it again."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        broker: RabbitBroker,
        schema: str,
        *,
        user_id: str,
        batch: int = 100,
        poll_seconds: float = 1.0,
        delete_seconds: float = 0.5,  # at peak a DELETE every 0.1 s was ~4 statements a signature machine-wide
        outbox: Outbox | None = None,
    ) -> None:
        self._pool = pool
        self._broker = broker
        self._schema = schema
        self._user_id = user_id
        self._batch = batch
        self._poll = poll_seconds
        self._delete_seconds = delete_seconds
        self._wake = Wakeup()
        self._handed: collections.deque[OutboxRow] = collections.deque()
        self._swept: set[int] = set()  # ids a sweep published that may still be handed to us
        self._sent: list[int] = []  # ids published from hand, not deleted yet
        self._sweep_due, self._sweep_all = 0.0, True  # when the next sweep is (monotonic; 0: now), and of what
        self._delete_due = math.inf
        if outbox is not None:
            outbox.hand_to(self.take)

    def wake(self) -> None:
        """Rows were written that nobody hands us: sweep now."""
        self._sweep_due, self._sweep_all = 0.0, True
        self._wake.set()

    def take(self, rows: list[OutboxRow]) -> None:
        """Rows just committed, to publish in the order given."""
        self._handed.extend(rows)
        self._wake.set()

    async def run(self) -> None:
        log = structlog.get_logger()
        failures = 0
        while True:
            try:
                more = await self._round()
                failures = 0
            except Exception as exc:  # the relay's edge: broker or database away; keep the rows, retry
                failures += 1
                self._sweep_due, self._sweep_all = 0.0, True  # what it held is in the table still: a sweep finds it
                log.warning("outbox relay could not publish; will retry", error=repr(exc), failures=failures)
                await asyncio.sleep(min(0.5 * 2**failures, 10.0))
                continue
            if not more:
                await self._wake.sleep(max(0.0, min(self._sweep_due, self._delete_due) - time.monotonic()))

    async def _round(self) -> bool:
        """A sweep when one is due, else what was handed (and the deletes when due); whether more waits."""
        if time.monotonic() >= self._sweep_due:
            return await self._sweep()
        if time.monotonic() >= self._delete_due or len(self._sent) >= self._batch:
            await self._delete_sent()
        await self._publish_handed()
        return bool(self._handed)

    async def _sweep(self) -> bool:
        everything, self._sweep_all = self._sweep_all, False  # a wake meanwhile asks for another
        self._sweep_due = time.monotonic() + self._poll
        if await self.publish_pending(settled=0.0 if everything else _SETTLED_SECONDS) >= self._batch:
            self._sweep_due, self._sweep_all = 0.0, True  # a backlog: sweep on
        return self._sweep_due == 0.0 or bool(self._handed)

    async def _publish_handed(self) -> None:
        taken = [self._handed.popleft() for _ in range(min(self._batch, len(self._handed)))]
        rows = [row for row in taken if row.id not in self._swept]
        self._swept.difference_update(row.id for row in taken)
        if rows:
            await asyncio.gather(*(self._publish(row) for row in rows))
            self._sent += [row.id for row in rows]
            self._delete_due = min(self._delete_due, time.monotonic() + self._delete_seconds)

    async def _delete_sent(self) -> None:
        sent, self._sent, self._delete_due = self._sent, [], math.inf
        try:
            await self._pool.execute(f"DELETE FROM {self._schema}.outbox WHERE id = ANY($1::bigint[])", sent)
        except BaseException:
            self._sent[:0] = sent  # still to delete (a sweep that takes them deletes them without sending them again)
            raise

    async def publish_pending(self, *, settled: float = 0.0) -> int:
        """Sweep: publish the rows in the table at least ``settled`` seconds old, in order, up to ``batch`` of them,
        and delete them (and those of them already sent); how many."""
        async with self._pool.acquire() as conn, conn.transaction():
            rows = [OutboxRow.of(r) for r in await conn.fetch(_SWEEP.format(schema=self._schema), self._batch, settled)]
            if not rows:
                return 0
            sent = set(self._sent)
            fresh = [row for row in rows if row.id not in sent]
            await asyncio.gather(*(self._publish(row) for row in fresh))
            await conn.execute(f"DELETE FROM {self._schema}.outbox WHERE id = ANY($1::bigint[])", [r.id for r in rows])
        self._sent = [i for i in self._sent if i not in {row.id for row in rows}]
        self._remember_swept(fresh)
        return len(rows)

    def _remember_swept(self, rows: list[OutboxRow]) -> None:
        if len(self._swept) > 100_000:  # handed rows a sweep took are forgotten once handed; the rest would pile up
            self._swept.clear()
        self._swept.update(row.id for row in rows)

    async def _publish(self, row: OutboxRow) -> None:
        await self._broker.publish(
            row.body,
            exchange=EXCHANGES[row.exchange],
            routing_key=row.routing_key,
            persist=True,
            mandatory=True,
            message_id=str(row.message_id),
            content_type="application/json",
            headers=dict(row.headers) or None,
            user_id=self._user_id,
            timeout=30,
        )
        MESSAGES_PUBLISHED.labels(row.exchange, row.routing_key).inc()


_SWEEP = (
    "SELECT id, message_id, exchange, routing_key, body, headers FROM {schema}.outbox"
    " WHERE $2::float8 = 0 OR created_at <= now() - make_interval(secs => $2::float8) ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED"
)
