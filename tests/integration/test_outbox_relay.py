"""The outbox relay on real PostgreSQL and RabbitMQ: the rows a message's transaction wrote are handed to it
once committed, and every row goes out once, whether a sweep of the table or the hand-off reaches it first."""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from uuid import UUID, uuid4

import aio_pika
import asyncpg
import pytest
from faststream.rabbit import Channel, RabbitBroker

from shared.db import connect_pool, migrate
from shared.messaging import OutboxRelay
from shared.names import EVENTS_EXCHANGE
from shared.outbox import Outbox, gathered


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await connect_pool(database_url)
    await migrate(pool, "relayed", [])
    yield pool
    await pool.close()


@pytest.fixture
async def events(amqp_url: str) -> AsyncIterator[aio_pika.abc.AbstractQueue]:
    """Whatever reaches esign.events."""
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        exchange = await channel.declare_exchange(EVENTS_EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True)
        queue = await channel.declare_queue(exclusive=True)
        await queue.bind(exchange, "#")
        yield queue


@pytest.fixture
async def broker(amqp_url: str) -> AsyncIterator[RabbitBroker]:
    broker = RabbitBroker(amqp_url, default_channel=Channel(publisher_confirms=True, on_return_raises=True), logger=None)
    await broker.connect()
    yield broker
    await broker.stop()


@contextlib.asynccontextmanager
async def running(relay: OutboxRelay) -> AsyncIterator[None]:
    task = asyncio.create_task(relay.run())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def send(pool: asyncpg.Pool, outbox: Outbox, *, commit: bool = True) -> UUID:
    """One message through a message's transaction, as the consumer edge writes it; its id."""
    message_id = uuid4()
    async with pool.acquire() as conn:
        with gathered(conn) as outgoing:
            with contextlib.suppress(LookupError):
                async with conn.transaction():
                    await outbox.add_raw(conn, EVENTS_EXCHANGE, "document.withdrawn", message_id, b"{}")
                    await outgoing.write()
                    if not commit:
                        raise LookupError("rolled back")
                outgoing.committed()
    return message_id


async def received_until(queue: aio_pika.abc.AbstractQueue, last: UUID) -> list[str]:
    """The message ids that arrive, in order, up to and with ``last``."""
    seen: list[str] = []
    async with queue.iterator(timeout=20) as messages:
        async for message in messages:
            await message.ack()
            seen.append(message.message_id or "")
            if message.message_id == str(last):
                return seen
    return seen


async def test_a_row_both_swept_and_handed_goes_out_once(pool, broker, events) -> None:
    """A row handed to the relay while a sweep was asked for (a wake): the sweep sends it, the hand-off does not
    send it again; a message handed after it arrives next, and the outbox ends empty."""
    outbox = Outbox("relayed")
    relay = OutboxRelay(pool, broker, "relayed", user_id="guest", outbox=outbox, delete_seconds=0.0)
    first = await send(pool, outbox)
    relay.wake()
    async with running(relay):
        await outbox_empty(pool)  # swept: sent and deleted
        last = await send(pool, outbox)
        assert await received_until(events, last) == [str(first), str(last)]
        await outbox_empty(pool)


async def outbox_empty(pool: asyncpg.Pool) -> None:
    for _ in range(400):
        if not await pool.fetchval("SELECT count(*) FROM relayed.outbox"):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the outbox was not emptied in 20 s")


async def test_a_rolled_back_transaction_sends_nothing(pool, broker, events) -> None:
    """Rows gathered in a transaction that rolled back are neither written nor handed: the next message is the
    first to arrive."""
    outbox = Outbox("relayed")
    relay = OutboxRelay(pool, broker, "relayed", user_id="guest", outbox=outbox)
    async with running(relay):
        await send(pool, outbox, commit=False)
        last = await send(pool, outbox)
        assert await received_until(events, last) == [str(last)]
    assert await pool.fetchval("SELECT count(*) FROM relayed.outbox") <= 1  # the last one, unless deleted already
