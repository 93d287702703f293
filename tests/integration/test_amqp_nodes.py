"""A PARAAF_AMQP_URL listing several nodes (shared/amqp.py): a connection goes to a node that answers, and a
long-lived one moves to another node when its own goes away. Two TCP forwarders stand in for two nodes of one
broker, so a node can go without the broker going. They use the broker's root vhost (a queue of their own there):
they need no vhost of their own."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import aio_pika
import pytest

from shared import amqp
from tests.conftest import Infra
from tests.support.forwarder import Forwarder
from tests.support.net import free_port


def _listing(amqp_url: str, *ports: int) -> str:
    parts = urlsplit(amqp_url)
    userinfo = parts.netloc.rpartition("@")[0]
    return urlunsplit(parts._replace(netloc=f"{userinfo}@" + ",".join(f"127.0.0.1:{p}" for p in ports)))


@pytest.fixture
def amqp_url(infra: Infra) -> str:
    return infra.amqp_url


@pytest.fixture
async def nodes(amqp_url: str) -> AsyncIterator[tuple[Forwarder, Forwarder]]:
    parts = urlsplit(amqp_url)
    pair = (Forwarder(parts.hostname or "127.0.0.1", parts.port or 5672), Forwarder(parts.hostname or "127.0.0.1", parts.port or 5672))
    for forwarder in pair:
        await forwarder.start()
    yield pair
    for forwarder in pair:
        await forwarder.stop()


async def test_a_connection_goes_to_a_node_that_answers(amqp_url: str) -> None:
    nobody = free_port()  # nothing listens there: a node that is down
    connection = await amqp.connect(_listing(amqp_url, nobody, urlsplit(amqp_url).port or 5672))
    async with connection:
        channel = await connection.channel()
        assert (await channel.declare_queue(exclusive=True)).name


async def test_a_robust_connection_moves_to_the_other_node_when_its_own_goes_and_consumes_again(
    amqp_url: str, nodes: tuple[Forwarder, Forwarder]
) -> None:
    connection = await amqp.connect_robust(_listing(amqp_url, nodes[0].port, nodes[1].port), reconnect_interval=0.2)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        name = f"nodes-test-{uuid.uuid4().hex[:8]}"
        queue = await channel.declare_queue(name, durable=True, arguments={"x-queue-type": "quorum"})
        received: asyncio.Queue[bytes] = asyncio.Queue()

        async def keep(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            async with message.process():
                await received.put(message.body)

        await queue.consume(keep)
        on = next(f for f in nodes if f.port == connection.url.port)
        other = next(f for f in nodes if f is not on)
        await on.stop()  # its node goes: the connection must come back through the other
        reconnected = asyncio.Event()
        connection.reconnect_callbacks.add(lambda *_: reconnected.set())
        await asyncio.wait_for(reconnected.wait(), timeout=30)
        assert connection.url.port == other.port
        await channel.default_exchange.publish(aio_pika.Message(b"after the failover"), routing_key=name)
        assert await asyncio.wait_for(received.get(), timeout=30) == b"after the failover"
        await channel.queue_delete(name)
