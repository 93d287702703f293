"""Start and stop of a service as its own process (the probe service of tests/support/probe.py, built with the
shared runtime every service uses): SIGTERM lets the message in hand finish, and a service started before
RabbitMQ or PostgreSQL answers waits for them instead of exiting."""

import asyncio
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit
from uuid import uuid4

import aio_pika
import asyncpg
import httpx
import pytest

from shared.credentials import read_identity
from shared.events import DocumentWithdrawn
from tests.conftest import operator_environment
from tests.support.bus import publish_as
from tests.support.forwarder import Forwarder
from tests.support.net import free_port
from tests.support.probe import PROBE_SCHEMAS, PROBE_SERVICES, PROBE_TOPOLOGY

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
async def settings(provision):  # type: ignore[no-untyped-def]
    return await provision(PROBE_TOPOLOGY, schemas=PROBE_SCHEMAS, services=PROBE_SERVICES)


@contextmanager
def probe_process(environment: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``python -m tests.support.probe`` as systemd would run a service; killed if a test leaves it running."""
    with log.open("ab") as output:
        process = subprocess.Popen([sys.executable, "-m", "tests.support.probe"], env=environment, stdout=output, stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


async def logged(log: Path, words: str, *, count: int = 1, timeout: float = 30.0) -> list[str]:
    """The log's lines holding ``words``, once there are ``count`` of them."""
    deadline = time.monotonic() + timeout
    while True:
        lines = [line for line in log.read_text().splitlines() if words in line]
        if len(lines) >= count:
            return lines
        if time.monotonic() > deadline:
            raise AssertionError(f"not {count} × {words!r} in {log} within {timeout} s:\n{log.read_text()[-3000:]}")
        await asyncio.sleep(0.1)


async def effects(database_url: str, event: DocumentWithdrawn) -> tuple[int, int]:
    """(the event's effects, outgoing messages not yet published)."""
    conn = await asyncpg.connect(database_url)
    try:
        done = await conn.fetchval("SELECT count(*) FROM probe.effects WHERE event_id = $1", event.event_id)
        return done, await conn.fetchval("SELECT count(*) FROM probe.outbox")
    finally:
        await conn.close()


async def waiting_in(amqp_url: str, queue: str) -> int:
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        declared = await (await connection.channel()).declare_queue(queue, passive=True)
        return declared.declaration_result.message_count


async def test_sigterm_lets_the_message_in_hand_finish_and_exits_0(settings, database_url: str, amqp_url: str, tmp_path: Path) -> None:
    """SIGTERM while a handler is 3 s into its work: the service finishes it, commits once, publishes what it
    caused, acks it (nothing waits in the queue to be done again) and exits 0 within 10 s."""
    log = tmp_path / "probe.log"
    event = DocumentWithdrawn(correlation_id=uuid4(), withdrawn_by="elen.elaut", reason="test")
    with probe_process({**operator_environment(settings), "PARAAF_PROBE_SLOW_SECONDS": "3"}, log) as process:
        await logged(log, "service started")
        await publish_as(settings, "router", event)
        await logged(log, "probe handling")
        stopping = time.monotonic()
        process.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(process.wait, 15)
        took = time.monotonic() - stopping
    assert code == 0, log.read_text()[-3000:]
    assert took < 10, f"the stop took {took:.1f} s"
    assert await effects(database_url, event) == (1, 0)
    assert await waiting_in(amqp_url, "probe.events") == 0
    assert await waiting_in(amqp_url, "probe.events.dlq") == 0


def _through(url: str, forwarder: Forwarder) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"{parts.netloc.rsplit('@', 1)[0]}@127.0.0.1:{forwarder.port}"))


@pytest.fixture
async def forwarders(database_url: str, amqp_url: str) -> AsyncIterator[tuple[Forwarder, Forwarder]]:
    database, broker = urlsplit(database_url), urlsplit(amqp_url)
    pair = Forwarder(database.hostname or "127.0.0.1", database.port or 5432), Forwarder(broker.hostname or "127.0.0.1", broker.port or 5672)
    yield pair
    for forwarder in pair:
        await forwarder.stop()


async def test_a_service_started_before_postgresql_and_rabbitmq_waits_for_them_and_comes_up(
    settings, forwarders: tuple[Forwarder, Forwarder], tmp_path: Path
) -> None:
    """Started while neither server answers, the service stays up and says every few seconds what it waits for;
    once PostgreSQL answers it waits for RabbitMQ, and once that answers too, /health says ok."""
    postgres, rabbitmq = forwarders
    identity = read_identity(settings, "probe")
    port, log = free_port(), tmp_path / "probe.log"
    environment = {
        **operator_environment(settings), "PARAAF_PROBE_PORT": str(port),
        "PARAAF_PROBE_DATABASE_URL": _through(identity.database_url, postgres), "PARAAF_PROBE_AMQP_URL": _through(identity.amqp_url, rabbitmq),
    }
    with probe_process(environment, log) as process:
        await logged(log, "waiting for PostgreSQL", count=3)
        await postgres.start()
        await logged(log, "waiting for RabbitMQ", count=3)
        assert process.poll() is None, "the service exited instead of waiting"
        await rabbitmq.start()
        await logged(log, "service started")
        async with httpx.AsyncClient() as client:
            assert (await client.get(f"http://127.0.0.1:{port}/health")).json()["status"] == "ok"
        process.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(process.wait, 15) == 0
    waits = [line for line in log.read_text().splitlines() if "waiting for" in line]
    assert all("retry_in" in line for line in waits) and not any("Traceback" in line for line in waits)


async def test_a_service_waiting_for_its_servers_stops_on_sigterm(settings, forwarders: tuple[Forwarder, Forwarder], tmp_path: Path) -> None:
    """A service still waiting for PostgreSQL stops on SIGTERM within seconds, exit 0, as systemd expects."""
    postgres, rabbitmq = forwarders
    identity = read_identity(settings, "probe")
    log = tmp_path / "probe.log"
    environment = {
        **operator_environment(settings),
        "PARAAF_PROBE_DATABASE_URL": _through(identity.database_url, postgres), "PARAAF_PROBE_AMQP_URL": _through(identity.amqp_url, rabbitmq),
    }
    with probe_process(environment, log) as process:
        await logged(log, "waiting for PostgreSQL", count=2)
        stopping = time.monotonic()
        process.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(process.wait, 15)
    assert (code, time.monotonic() - stopping < 10) == (0, True), log.read_text()[-2000:]
