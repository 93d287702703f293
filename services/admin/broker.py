"""``paraaf broker setup``: the broker's users, their permissions and the whole
topology, from shared/topology.py, idempotently.

Every Paraaf service gets its own user ``<prefix>.<service>``: configure
nothing, write only the exchanges it publishes on (and on a topic exchange
only the routing keys it owns), read only its own queues. The operator's
user (``<prefix>.operator``, for ``paraaf dlq`` and ``paraaf tail``) reads
dead-letter and holding queues, may replay a message as its original
publisher (RabbitMQ's ``impersonator`` tag), and may follow esign.events on a
server-named queue of its own. A source's user may publish
``submit.<source>``, ``withdraw.<source>`` and ``status.<source>`` on
esign.intake and read ``outcomes.<source>``; nothing else.

Users and permissions go in as one definitions import: through
``rabbitmqctl`` on the broker's own machine, or through the management HTTP
API (``PARAAF_BROKER_ADMIN_API``) for a remote broker. Exchanges, queues and
bindings are declared over AMQP with the administrator's URL
(``PARAAF_AMQP_URL``).
"""

import base64
import hashlib
import json
import re
import secrets
import subprocess
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlsplit, urlunsplit

import aio_pika
import httpx
from faststream.rabbit import RabbitExchange

from services.admin.config import BrokerAdminError
from shared import amqp
from shared.credentials import stored, write_identity
from shared.settings import Settings
from shared.topology import (
    DLX,
    EVENTS,
    EXCHANGES,
    GROUP_SIZE,
    HOLDING_QUEUES,
    INTAKE,
    OPERATOR,
    QUORUM,
    REJECTED_QUEUE,
    SOURCE_REQUESTS,
    TOPIC_EXCHANGES,
    UNROUTED,
    QueueSpec,
    ServiceSpec,
    Topology,
    broker_user,
    outcomes_queue,
    source_user,
)

__all__ = [
    "BrokerAdmin",
    "BrokerAdminError",
    "ManagementApi",
    "RabbitCtl",
    "admin_for",
    "declare_queue",
    "declare_topology",
    "password_hash",
    "remove_source_user",
    "setup_broker",
    "setup_source_user",
    "user_url",
    "vhost_of",
]

NOTHING = "^$"


class BrokerAdmin(Protocol):
    """Where users and permissions are written: the local rabbitmqctl or a management API."""

    def import_definitions(self, definitions: dict) -> None: ...

    def delete_users(self, names: Iterable[str]) -> None: ...


class RabbitCtl:
    """The broker on this machine, through rabbitmqctl (root, or the rabbitmq user)."""

    def _run(self, *args: str) -> None:
        try:
            result = subprocess.run(["rabbitmqctl", *args], capture_output=True, text=True, timeout=120)
        except FileNotFoundError:
            raise BrokerAdminError(
                "rabbitmqctl is not installed here: run this on the broker's machine, or set"
                " PARAAF_BROKER_ADMIN_API to its management API (http://USER:PASSWORD@HOST:15672/api)"
            ) from None
        if result.returncode != 0:
            raise BrokerAdminError(f"rabbitmqctl {args[0]} failed: {(result.stderr or result.stdout).strip()}")

    def import_definitions(self, definitions: dict) -> None:
        with tempfile.NamedTemporaryFile("w", suffix=".json") as handle:
            json.dump(definitions, handle)
            handle.flush()
            Path(handle.name).chmod(0o644)  # rabbitmqctl may read it as the rabbitmq user
            self._run("import_definitions", handle.name)

    def delete_users(self, names: Iterable[str]) -> None:
        for name in names:
            self._run("delete_user", name)


class ManagementApi:
    """A broker elsewhere, through its management HTTP API (``http://USER:PASSWORD@HOST:15672/api``)."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self._auth = (unquote(parts.username or ""), unquote(parts.password or ""))
        self._base = urlunsplit(parts._replace(netloc=parts.hostname + (f":{parts.port}" if parts.port else ""))).rstrip("/")

    def _call(self, method: str, path: str, **kwargs: object) -> None:
        try:
            response = httpx.request(method, self._base + path, auth=self._auth, timeout=60, **kwargs)  # type: ignore[arg-type]
        except httpx.TransportError as exc:
            raise BrokerAdminError(f"the management API at {self._base} does not answer: {exc}") from None
        if response.status_code >= 400:
            raise BrokerAdminError(f"the management API refused {method} {path}: {response.status_code} {response.text}")

    def import_definitions(self, definitions: dict) -> None:
        self._call("POST", "/definitions", json=definitions)

    def delete_users(self, names: Iterable[str]) -> None:
        users = list(names)
        if users:
            self._call("POST", "/users/bulk-delete", json={"users": users})


def admin_for(settings: Settings) -> BrokerAdmin:
    api = getattr(settings, "broker_admin_api", None)
    return ManagementApi(api) if api else RabbitCtl()


def password_hash(password: str) -> str:
    """RabbitMQ's default (rabbit_password_hashing_sha256): base64(salt + sha256(salt + password))."""
    salt = secrets.token_bytes(4)
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


def vhost_of(amqp_url: str) -> str:
    path = urlsplit(amqp_url).path
    return unquote(path[1:]) if len(path) > 1 else "/"


def user_url(admin_url: str, user: str, password: str) -> str:
    """The admin URL's broker (every node it lists) and vhost, as ``user``."""
    return amqp.with_user(admin_url, user, password)


def _password_in(url: str | None) -> str | None:
    return unquote(urlsplit(url).password or "") or None if url else None


def _any(patterns: Iterable[str]) -> str:
    items = sorted(set(patterns))
    return f"^({'|'.join(items)})$" if items else NOTHING


def _escaped(*names: str) -> str:
    return _any(re.escape(n) for n in names)


@dataclass(frozen=True)
class _Account:
    user: str
    password: str
    tags: tuple[str, ...]
    configure: str
    write: str
    read: str
    topics: dict[str, str]  # topic exchange -> write pattern
    topic_reads: dict[str, str] = field(default_factory=dict)  # topic exchange -> binding keys allowed (default: none)


def _service_account(spec: ServiceSpec, prefix: str, password: str) -> _Account:
    writes = [name for name, keys in spec.publishes.items() if keys]
    queues = [q.name for q in spec.consumes]
    topics = {e.name: _any(spec.publishes.get(e.name, ())) for e in TOPIC_EXCHANGES}
    return _Account(broker_user(prefix, spec.name), password, (), NOTHING, _escaped(*writes), _escaped(*queues), topics)


def _operator_account(topology: Topology, prefix: str, password: str) -> _Account:
    kept = [q.dead_letter_queue for q in topology.queues] + list(HOLDING_QUEUES)
    # Replay publishes to the queue a message came from (default exchange) or, for `unrouted`,
    # back to the exchange it was first published on, as its first publisher.
    writes = ["amq.default", *(e.name for e in TOPIC_EXCHANGES)]
    topics = {e.name: ".*" for e in TOPIC_EXCHANGES}
    # `paraaf tail` follows esign.events on an exclusive, auto-delete, server-named queue: declaring it needs
    # configure on `amq.gen-...`, binding it write on it and read on esign.events (with any binding key), consuming
    # read on it. Only server-named queues: the operator still cannot create, bind to or delete any named queue.
    tail = r"amq\.gen-.*"
    configure = _any([tail])
    write = _any([*(re.escape(w) for w in writes), tail])
    read = _any([*(re.escape(k) for k in kept), re.escape(EVENTS.name), tail])
    return _Account(
        broker_user(prefix, OPERATOR), password, ("impersonator",), configure, write, read, topics, {EVENTS.name: ".*"}
    )


def _definitions(vhost: str, accounts: Sequence[_Account], *, users: bool = True) -> dict:
    return {
        "users": [] if not users else [
            {
                "name": a.user,
                "password_hash": password_hash(a.password),
                "hashing_algorithm": "rabbit_password_hashing_sha256",
                "tags": list(a.tags),
                "limits": {},
            }
            for a in accounts
        ],
        "permissions": [
            {"user": a.user, "vhost": vhost, "configure": a.configure, "write": a.write, "read": a.read} for a in accounts
        ],
        "topic_permissions": [
            {"user": a.user, "vhost": vhost, "exchange": exchange, "write": write, "read": a.topic_reads.get(exchange, NOTHING)}
            for a in accounts
            for exchange, write in a.topics.items()
        ],
    }


async def declare_queue(channel: aio_pika.abc.AbstractChannel, spec: QueueSpec, delivery_limit: int) -> None:
    """A consuming queue, its dead-letter queue, and their bindings."""
    dlq = await _quorum_queue(channel, spec.dead_letter_queue, QUORUM)
    await dlq.bind(DLX.name, routing_key=spec.name)
    queue = await _quorum_queue(channel, spec.name, spec.arguments(delivery_limit))
    for binding in spec.bindings:
        await queue.bind(binding.exchange.name, routing_key=binding.routing_key)


async def _quorum_queue(channel: aio_pika.abc.AbstractChannel, name: str, arguments: dict) -> aio_pika.abc.AbstractQueue:
    """Declare a quorum queue; one an earlier version declared without an initial group size keeps the members it has
    (RabbitMQ refuses to declare it again with a different argument; ``rabbitmq-queues grow`` adds members)."""
    try:
        return await channel.declare_queue(name, durable=True, arguments=arguments)
    except aio_pika.exceptions.ChannelPreconditionFailed as exc:
        if GROUP_SIZE not in str(exc):
            raise
    await channel.reopen()
    return await channel.declare_queue(name, durable=True, arguments={k: v for k, v in arguments.items() if k != GROUP_SIZE})


async def _connect_admin(admin_url: str) -> aio_pika.abc.AbstractConnection:
    try:
        return await amqp.connect(admin_url)
    except (OSError, aio_pika.exceptions.AMQPConnectionError) as exc:
        vhost = vhost_of(admin_url)
        raise BrokerAdminError(
            f"cannot connect to RabbitMQ as the administrator of PARAAF_AMQP_URL ({exc!r}); the vhost `{vhost}`"
            f" must exist and the administrator need permissions on it: rabbitmqctl add_vhost {vhost};"
            f" rabbitmqctl set_permissions -p {vhost} USER '.*' '.*' '.*'"
        ) from None


async def declare_topology(admin_url: str, topology: Topology, *, delivery_limit: int) -> None:
    """Every exchange, every queue with its dead-letter queue, and every binding.

    The order matters on a fresh broker, where an integrator publishes the moment ``esign.intake`` appears: first
    the holding queues and the alternate exchange (nothing published from then on can vanish), then every consuming
    queue, and the exchange sources publish on last, so whatever they send finds the whole pipeline in place.
    """
    connection = await _connect_admin(admin_url)
    async with connection:
        channel = await connection.channel()
        for exchange in (UNROUTED, DLX):
            await _declare_exchange(channel, exchange)
        await _declare_holding_queues(channel)
        for exchange in EXCHANGES.values():
            if exchange not in (UNROUTED, DLX, INTAKE):
                await _declare_exchange(channel, exchange)
        for spec in _without_intake(topology.queues):
            await declare_queue(channel, spec, delivery_limit)
        await _declare_exchange(channel, INTAKE)
        for spec in topology.queues:  # declaring again is harmless; this binds the queues of esign.intake
            await declare_queue(channel, spec, delivery_limit)


def _without_intake(queues: Sequence[QueueSpec]) -> list[QueueSpec]:
    return [q for q in queues if all(b.exchange is not INTAKE for b in q.bindings)]


async def _declare_exchange(channel: aio_pika.abc.AbstractChannel, exchange: RabbitExchange) -> None:
    await channel.declare_exchange(exchange.name, exchange.type.value, durable=True, arguments=exchange.arguments or None)


async def _declare_holding_queues(channel: aio_pika.abc.AbstractChannel) -> None:
    holding = {name: await _quorum_queue(channel, name, QUORUM) for name in HOLDING_QUEUES}
    await holding["unrouted"].bind(UNROUTED.name)
    await holding[REJECTED_QUEUE].bind(DLX.name, routing_key=REJECTED_QUEUE)


def _password(settings: Settings, service: str) -> str:
    return _password_in(stored(settings, service).get("amqp_url")) or secrets.token_urlsafe(24)


async def setup_broker(settings: Settings, topology: Topology, admin: BrokerAdmin) -> list[str]:
    """Users, permissions and topology; each service's URL written to the secrets directory. Returns the users."""
    prefix, vhost = settings.broker_user_prefix, vhost_of(settings.amqp_url)
    accounts = [_service_account(spec, prefix, _password(settings, spec.name)) for spec in topology.services]
    accounts.append(_operator_account(topology, prefix, _password(settings, OPERATOR)))
    await declare_topology(settings.amqp_url, topology, delivery_limit=settings.delivery_limit)
    admin.import_definitions(_definitions(vhost, accounts))
    names = [spec.name for spec in topology.services] + [OPERATOR]
    for name, account in zip(names, accounts, strict=True):
        write_identity(settings, name, amqp_url=user_url(settings.amqp_url, account.user, account.password))
    return [a.user for a in accounts]


async def setup_source_user(settings: Settings, admin: BrokerAdmin, source: str, password: str | None) -> str | None:
    """The source's user (publish submit.<source>, read outcomes.<source>) and its outcomes queue.

    With ``password`` the user gets it and its URL is returned; without, only its
    permissions are (re)set and its password stays as it was.
    """
    prefix, vhost = settings.broker_user_prefix, vhost_of(settings.amqp_url)
    queue = outcomes_queue(source)
    account = _Account(
        source_user(prefix, source),
        password or "",
        (),
        NOTHING,
        _escaped(INTAKE.name),
        _escaped(queue.name),
        {e.name: (_any(rf"{k}\.{re.escape(source)}" for k in SOURCE_REQUESTS) if e is INTAKE else NOTHING) for e in TOPIC_EXCHANGES},
    )
    connection = await _connect_admin(settings.amqp_url)
    async with connection:
        await declare_queue(await connection.channel(), queue, settings.delivery_limit)
    admin.import_definitions(_definitions(vhost, [account], users=password is not None))
    return user_url(settings.amqp_url, account.user, password) if password is not None else None


async def remove_source_user(settings: Settings, admin: BrokerAdmin, source: str) -> None:
    admin.delete_users([source_user(settings.broker_user_prefix, source)])
