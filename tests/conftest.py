"""Infrastructure for tests that talk to real RabbitMQ, PostgreSQL and SMTP.

Broker and database URLs come from ``PARAAF_TEST_AMQP_URL`` and
``PARAAF_TEST_DATABASE_URL`` (default: the local servers). When neither is
given, no local server answers and a Docker engine does, testcontainers
starts them. Every test that needs them gets a fresh database and a fresh
RabbitMQ vhost, so runs and tests never see each other's messages.
"""

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from urllib.parse import quote, urlsplit, urlunsplit

import asyncpg
import httpx
import pytest

from tests.support.smtp import SmtpServer

LOCAL_AMQP = "amqp://guest:guest@127.0.0.1:5672/"
LOCAL_DATABASE = "postgresql://postgres@127.0.0.1:5432/postgres"


def _answers(url: str, default_port: int) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or default_port), timeout=1):
            return True
    except OSError:
        return False


def _docker_answers() -> bool:
    try:
        import docker

        docker.from_env().ping()
        return True
    except Exception:  # noqa: BLE001 - any failure means "no engine here"
        return False


@dataclass
class Infra:
    amqp_url: str  # the broker's root vhost
    database_url: str  # a database to run CREATE DATABASE from
    vhost_admin: "VhostAdmin"


class VhostAdmin:
    """Creates and deletes vhosts: rabbitmqctl (local or in the container), else the management API."""

    def __init__(self, amqp_url: str, container: object | None = None) -> None:
        self._url = urlsplit(amqp_url)
        self._user = self._url.username or "guest"
        self._container = container

    def _ctl(self, *args: str) -> None:
        if self._container is not None:
            self._container.exec(["rabbitmqctl", *args])  # type: ignore[attr-defined]
        else:
            subprocess.run(["rabbitmqctl", *args], check=True, capture_output=True, timeout=60)

    def _api(self) -> tuple[str, tuple[str, str]]:
        return f"http://{self._url.hostname}:15672/api", (self._user, self._url.password or "guest")

    def create(self, name: str) -> str:
        if self._container is not None or shutil.which("rabbitmqctl"):
            self._ctl("add_vhost", name)
            self._ctl("set_permissions", "-p", name, self._user, ".*", ".*", ".*")
        else:
            api, auth = self._api()
            httpx.put(f"{api}/vhosts/{quote(name, safe='')}", auth=auth).raise_for_status()
            httpx.put(
                f"{api}/permissions/{quote(name, safe='')}/{self._user}",
                auth=auth,
                json={"configure": ".*", "write": ".*", "read": ".*"},
            ).raise_for_status()
        return urlunsplit(self._url._replace(path="/" + quote(name, safe="")))

    def delete(self, name: str) -> None:
        if self._container is not None or shutil.which("rabbitmqctl"):
            with contextlib.suppress(subprocess.CalledProcessError):
                self._ctl("delete_vhost", name)
        else:
            api, auth = self._api()
            httpx.delete(f"{api}/vhosts/{quote(name, safe='')}", auth=auth)


@pytest.fixture(scope="session")
def infra() -> Iterator[Infra]:
    amqp = os.environ.get("PARAAF_TEST_AMQP_URL")
    database = os.environ.get("PARAAF_TEST_DATABASE_URL")
    containers = []
    if not amqp and not _answers(LOCAL_AMQP, 5672) and _docker_answers():
        from testcontainers.rabbitmq import RabbitMqContainer

        rabbit = RabbitMqContainer("rabbitmq:3.13").start()
        containers.append(rabbit)
        amqp = f"amqp://guest:guest@{rabbit.get_container_host_ip()}:{rabbit.get_exposed_port(5672)}/"
    if not database and not _answers(LOCAL_DATABASE, 5432) and _docker_answers():
        from testcontainers.postgres import PostgresContainer

        postgres = PostgresContainer("postgres:16").start()
        containers.append(postgres)
        database = postgres.get_connection_url(driver=None)
    amqp = amqp or LOCAL_AMQP
    rabbit_container = next((c for c in containers if c.__class__.__name__ == "RabbitMqContainer"), None)
    yield Infra(amqp_url=amqp, database_url=database or LOCAL_DATABASE, vhost_admin=VhostAdmin(amqp, rabbit_container))
    for container in containers:
        container.stop()


def fresh_name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def database_url(infra: Infra) -> AsyncIterator[str]:
    """A new, empty database for this test; dropped afterwards."""
    name = fresh_name("paraaf_test")
    admin = await asyncpg.connect(infra.database_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    yield urlunsplit(urlsplit(infra.database_url)._replace(path="/" + name))
    admin = await asyncpg.connect(infra.database_url)
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.close()


@pytest.fixture
async def amqp_url(infra: Infra) -> AsyncIterator[str]:
    """A new RabbitMQ vhost for this test; deleted afterwards."""
    name = fresh_name("paraaf-test")
    url = await asyncio.to_thread(infra.vhost_admin.create, name)
    yield url
    await asyncio.to_thread(infra.vhost_admin.delete, name)


@pytest.fixture
async def smtp_server() -> AsyncIterator[SmtpServer]:
    """A real SMTP server (aiosmtpd) in this process, keeping what it receives."""
    server = SmtpServer()
    await server.start()
    yield server
    await server.stop()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
