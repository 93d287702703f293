"""Faults done to a running Paraaf from outside, as an operator's bad day does them: a service killed with SIGKILL
and started again, its broker connections closed by RabbitMQ, the database's backends terminated by PostgreSQL,
the RabbitMQ application stopped and started. Each is counted by kind for the report."""

import asyncio
import json
import signal
import socket
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import aio_pika
import asyncpg
import httpx

from shared import amqp
from shared.topology import broker_user
from tests.support.session import MANAGEMENT_BASE, SESSION_PREFIX
from tests.support.system import System

__all__ = ["Faults", "Received", "SourceInbox", "broker_answers", "ensure_broker_running", "restart_broker_app"]

MANAGEMENT = MANAGEMENT_BASE
AUTH = ("guest", "guest")


class Faults:
    """Injects faults into ``system`` and counts them (``counts``: kind -> how many)."""

    def __init__(self, system: System) -> None:
        self.system = system
        self.counts: Counter[str] = Counter()
        self._kills: Counter[str] = Counter()
        self.vhost = unquote(urlsplit(system.amqp_url).path.lstrip("/"))
        self.database = urlsplit(system.env["PARAAF_DATABASE_URL"]).path.lstrip("/")

    async def kill(self, service: str) -> None:
        """SIGKILL one process of ``service`` (each of its replicas in turn; the others go on working), start it
        again at once, and wait until it answers /health."""
        replicas = self.system.replicas(service)
        name = replicas[self._kills[service] % len(replicas)]
        self._kills[service] += 1
        await asyncio.to_thread(self.system.stop_service, name, signal.SIGKILL)
        self.system.start_service(name)
        self.counts["SIGKILL and restart"] += 1
        await self.system.wait_healthy([name], timeout=60)

    async def close_broker_connections(self, service: str) -> int:
        """RabbitMQ closes every connection of ``service``'s broker user in this vhost; how many it closed."""
        user = broker_user(SESSION_PREFIX, service)
        async with httpx.AsyncClient(auth=AUTH, timeout=10) as client:
            listed = await client.get(f"{MANAGEMENT}/vhosts/{quote(self.vhost, safe='')}/connections")
            names = [c["name"] for c in listed.json() if c.get("user") == user]
            for name in names:
                await client.delete(f"{MANAGEMENT}/connections/{quote(name, safe='')}", headers={"X-Reason": "fault test"})
        self.counts["service cut off by RabbitMQ"] += 1
        self.counts["broker connections closed"] += len(names)
        return len(names)

    async def terminate_database_backends(self) -> int:
        """PostgreSQL terminates every backend on the test database (every service's pool); how many."""
        admin = await asyncpg.connect(self.system.env["PARAAF_DATABASE_URL"])
        try:
            ended = await admin.fetchval(
                "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = $1 AND pid <> pg_backend_pid()",
                self.database,
            )
        finally:
            await admin.close()
        self.counts["database cut off by PostgreSQL"] += 1
        self.counts["database backends terminated"] += ended
        return ended


def _port_answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def broker_answers() -> bool:
    """RabbitMQ takes AMQP connections and its management API answers."""
    if not (_port_answers(5672) and _port_answers(15672)):
        return False
    try:
        return httpx.get(f"{MANAGEMENT}/overview", auth=AUTH, timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", *args], check=True, capture_output=True, timeout=120)


def wait_for_broker(timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not broker_answers():
        if time.monotonic() > deadline:
            raise AssertionError(f"RabbitMQ not answering on 5672 and 15672 within {timeout:.0f} s")
        time.sleep(0.5)


def ensure_broker_running() -> None:
    """Whatever happened before: RabbitMQ's application started and answering on 5672 and 15672 (other suites
    share this broker)."""
    if not broker_answers():
        _rabbitmqctl("start_app")
    wait_for_broker()


def restart_broker_app(down_seconds: float = 3.0) -> None:
    """`rabbitmqctl stop_app`, a pause, `start_app`; returns once 5672 and 15672 answer again."""
    try:
        _rabbitmqctl("stop_app")
        time.sleep(down_seconds)  # the outage itself: how long the services find no broker
    finally:
        _rabbitmqctl("start_app")
        wait_for_broker()


@dataclass(frozen=True)
class Received:
    routing_key: str
    body: dict[str, Any]
    message_id: str
    at: float  # time.monotonic() when it arrived


class SourceInbox:
    """What source ``source`` reads from its queue ``outcomes.<source>``, as its own broker user, on a connection
    that comes back after the broker did (a durable queue: nothing published meanwhile is missed)."""

    def __init__(self, system: System, source: str = "notula") -> None:
        self._url = system.source_urls[source]
        self._queue = f"outcomes.{source}"
        self.received: list[Received] = []

    async def __aenter__(self) -> "SourceInbox":
        self._connection = await amqp.connect_robust(self._url, reconnect_interval=1)
        channel = await self._connection.channel()
        queue = await channel.declare_queue(self._queue, passive=True)
        await queue.consume(self._keep)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._connection.close()

    async def _keep(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        async with message.process():
            body = json.loads(message.body)
            self.received.append(Received(message.routing_key or "", body, message.message_id or "", time.monotonic()))

    def of(self, external_ref: str) -> list[Received]:
        return [r for r in self.received if r.body.get("external_ref") == external_ref]

    async def wait_until(self, done: Callable[[], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not done() and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
