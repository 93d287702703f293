"""The audit service appending in batches, on real RabbitMQ and PostgreSQL: a
burst is written many events per transaction and the chain verifies; a
duplicate, in the same batch or a later one, adds nothing; a forged or
malformed event is still parked, never appended; and one event that cannot be
appended does not hold up or double the others of its batch."""

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from uuid import uuid4

import aio_pika
import asyncpg
import pytest
from faststream import TestApp

from services.audit import handlers
from services.audit.config import AuditSettings
from services.audit.main import create_app
from services.audit.store import PostgresAuditStore
from shared.credentials import read_identity
from shared.events import NotificationSent
from shared.messaging import ERROR, REASON, UNTRUSTED
from shared.settings import Settings
from shared.topology import EVENTS
from tests.support.net import free_port
from tests.support.session import SESSION_PREFIX

DELIVERY_LIMIT = 2


@pytest.fixture
async def settings(provision) -> AuditSettings:
    admin = await provision(delivery_limit=DELIVERY_LIMIT)
    return AuditSettings(
        database_url=admin.database_url, amqp_url=admin.amqp_url, secrets_dir=admin.secrets_dir,
        broker_user_prefix=SESSION_PREFIX, db_role_prefix=SESSION_PREFIX, audit_port=free_port(),
        delivery_limit=DELIVERY_LIMIT,
    )


@pytest.fixture
async def log(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """The audit log as the database's administrator reads it."""
    conn = await asyncpg.connect(database_url)
    yield conn
    await conn.close()


def sent() -> NotificationSent:
    return NotificationSent(correlation_id=uuid4(), kind="signature_request", recipient="a@stad.be", subject="Ter ondertekening")


def body(event: NotificationSent, **changes: object) -> bytes:
    return json.dumps({**json.loads(event.to_json()), **changes}).encode()


async def publish(settings: Settings, service: str | None, *messages: tuple[str, bytes, str]) -> None:
    """(routing key, body, message id) in this order, as ``service`` publishes (its own user, persistent, confirmed);
    ``None``: as the broker's administrator, who may publish anything but only as itself."""
    identity = read_identity(settings, service, needs=("amqp_url",)) if service else None
    connection = await aio_pika.connect(identity.amqp_url if identity else settings.amqp_url)
    async with connection:
        exchange = await (await connection.channel(publisher_confirms=True)).get_exchange(EVENTS.name, ensure=False)
        await asyncio.gather(*(
            exchange.publish(aio_pika.Message(payload, message_id=message_id, user_id=identity.broker_user if identity else None,
                                              delivery_mode=aio_pika.DeliveryMode.PERSISTENT), routing_key)
            for routing_key, payload, message_id in messages
        ))


def as_published(*events: NotificationSent) -> list[tuple[str, bytes, str]]:
    return [(event.routing_key, event.to_json(), str(event.event_id)) for event in events]


async def eventually(check: Callable[[], object], timeout: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():  # type: ignore[misc]
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


async def appended(log: asyncpg.Connection, *events: NotificationSent) -> list[str]:
    """The ids of these events in the log, in the log's order (an id twice if it were there twice)."""
    rows = await log.fetch(
        "SELECT event_id FROM audit.log WHERE event_id = ANY($1::uuid[]) ORDER BY seq", [e.event_id for e in events]
    )
    return [str(row["event_id"]) for row in rows]


async def parked(settings: AuditSettings) -> list[aio_pika.abc.AbstractIncomingMessage]:
    """What lies in the audit's dead-letter queue, taken out."""
    connection = await aio_pika.connect(settings.amqp_url)
    async with connection:
        queue = await (await connection.channel()).declare_queue("audit.events.dlq", passive=True)
        found = []
        while (message := await queue.get(fail=False)) is not None:
            await message.ack()
            found.append(message)
        return found


async def waiting(settings: AuditSettings) -> int:
    """Messages still in the audit's queue (delivered but not acked ones count once the consumer is gone)."""
    connection = await aio_pika.connect(settings.amqp_url)
    async with connection:
        queue = await (await connection.channel()).declare_queue("audit.events", passive=True)
        return queue.declaration_result.message_count


async def verified(log: asyncpg.Connection) -> tuple[int, object]:
    async with log.transaction(isolation="repeatable_read", readonly=True):
        return await handlers.verify(PostgresAuditStore(log))


async def test_a_burst_is_appended_many_events_per_transaction_and_the_chain_verifies(settings, log) -> None:
    """1,200 events waiting when the audit starts are appended once each, in far fewer transactions than events
    (rows of one transaction share recorded_at), each acked (none back in the queue once the audit stopped), and
    the whole chain verifies."""
    burst = [sent() for _ in range(1200)]
    await publish(settings, "notifier", *as_published(*burst))
    async with TestApp(create_app(settings)):
        await eventually(lambda: _count(log, 1200))
    assert sorted(await appended(log, *burst)) == sorted(str(e.event_id) for e in burst)
    transactions = await log.fetchval("SELECT count(DISTINCT recorded_at) FROM audit.log")
    assert transactions <= 1200 // 10, f"{transactions} transactions for 1,200 events"
    assert await verified(log) == (1200, None) and await waiting(settings) == 0


async def _count(log: asyncpg.Connection, wanted: int) -> bool:
    return await log.fetchval("SELECT count(*) FROM audit.log") >= wanted


async def test_a_duplicated_delivery_adds_nothing_in_the_same_batch_or_a_later_one(settings, log) -> None:
    """An event published twice in a row (one batch) and once more after it was appended (a later batch) is in
    the log once; the copies are acked, not left in the queue or dead-lettered."""
    twice, others = sent(), [sent() for _ in range(20)]
    await publish(settings, "notifier", *as_published(twice, twice, *others, twice))
    async with TestApp(create_app(settings)):
        await eventually(lambda: _count(log, 21))
        await publish(settings, "notifier", *as_published(twice))
        later = sent()
        await publish(settings, "notifier", *as_published(later))  # behind the last copy: once it is in, the copy was seen
        await eventually(lambda: _count(log, 22))
    assert await appended(log, twice) == [str(twice.event_id)]
    assert await log.fetchval("SELECT count(*) FROM audit.log") == 22
    assert await parked(settings) == [] and await waiting(settings) == 0
    assert await verified(log) == (22, None)


async def test_a_forged_or_malformed_event_in_a_burst_is_parked_and_never_appended(settings, log) -> None:
    """Among good events, one published by someone who does not own it (the broker's administrator) and one that
    is not the event it says are parked in audit.events.dlq with why; the good ones are appended, the chain verifies."""
    good, forged, malformed = [sent() for _ in range(30)], sent(), sent()
    await publish(settings, "notifier", *as_published(*good[:15]), (malformed.routing_key, body(malformed, recipient=None), "m"))
    await publish(settings, None, *as_published(forged))
    await publish(settings, "notifier", *as_published(*good[15:]))
    async with TestApp(create_app(settings)):
        await eventually(lambda: _count(log, 30))
        dead: list[aio_pika.abc.AbstractIncomingMessage] = []

        async def both_parked() -> bool:
            dead.extend(await parked(settings))
            return len(dead) == 2

        await eventually(both_parked)
    reasons = {message.message_id: message.headers[REASON] for message in dead}
    assert reasons[str(forged.event_id)] == UNTRUSTED
    assert reasons["m"].startswith("malformed")
    assert await appended(log, forged, malformed) == []
    assert await verified(log) == (30, None) and await waiting(settings) == 0


async def test_an_event_that_cannot_be_appended_is_dead_lettered_alone_and_its_batch_is_written_once(settings, log) -> None:
    """A trusted event whose time the log cannot store (a number, which the event model accepts) fails its batch: the others of that batch are then appended
    one by one, each once, and it alone is retried and parked with its error after the delivery limit; every
    delivery is settled, the ones acked together after it included."""
    before, poison, after = [sent() for _ in range(10)], sent(), [sent() for _ in range(10)]
    await publish(
        settings, "notifier", *as_published(*before), (poison.routing_key, body(poison, occurred_at=1700000000), str(poison.event_id)),
        *as_published(*after),
    )
    async with TestApp(create_app(settings)):
        await eventually(lambda: _count(log, 20))
        dead: list[aio_pika.abc.AbstractIncomingMessage] = []

        async def poison_parked() -> bool:
            dead.extend(await parked(settings))
            return bool(dead)

        await eventually(poison_parked)
    assert [message.message_id for message in dead] == [str(poison.event_id)]
    assert "invalid input" in dead[0].headers[ERROR]
    assert sorted(await appended(log, *before, *after)) == sorted(str(e.event_id) for e in [*before, *after])
    assert await appended(log, poison) == []
    assert await verified(log) == (20, None) and await waiting(settings) == 0


async def test_stopped_and_started_again_in_the_middle_of_a_burst_each_event_is_appended_once(settings, log) -> None:
    """The audit stopped while batches of a burst are in hand and started again: every event is in the log once
    (what was written but not acked comes again and is dropped by the inbox), nothing waits in the queue."""
    burst = [sent() for _ in range(2500)]
    await publish(settings, "notifier", *as_published(*burst))
    async with TestApp(create_app(settings)):
        await eventually(lambda: _count(log, 1), timeout=30)
    assert await log.fetchval("SELECT count(*) FROM audit.log") < 2500, "the stop came too late to interrupt the burst"
    async with TestApp(create_app(settings)):
        await eventually(lambda: _count(log, 2500))
    assert sorted(await appended(log, *burst)) == sorted(str(e.event_id) for e in burst)
    assert await verified(log) == (2500, None) and await waiting(settings) == 0
