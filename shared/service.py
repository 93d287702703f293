"""The runtime every service shares: one FastStream app holding the broker,
the database pool, the outbox relay, the service's consumers, its HTTP
server and its background loops.

A service runs as itself: its own broker user and database role
(shared/credentials.py), never ``guest`` or a superuser. It finds its
queues where ``paraaf broker setup`` declared them and its schemas where
``paraaf db setup`` migrated them, and says which command to run when
they are not there. A service's ``main.create_app`` describes *what* it
consumes and serves; this module makes it run, and stop cleanly on
SIGINT/SIGTERM: the messages in hand are finished and acked first.

A service started while RabbitMQ or PostgreSQL is not (yet) reachable waits
for them, with back-off and a log line at each try, instead of exiting into
a restart loop; what a server answers (no such database, a refused login)
stops it at once, saying what to run.
"""

import asyncio
import contextlib
import functools
import os
import socket
import sys
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import aio_pika
import asyncpg
import structlog
import uvicorn
import uvloop
from faststream import AckPolicy, FastStream
from faststream.rabbit import Channel, RabbitBroker
from pydantic import BaseModel

from shared import amqp, clock
from shared.clock import clock_from
from shared.contract import COMMAND_TYPES, Outcome, StatusReport
from shared.credentials import read_identity
from shared.db import SHARED_SCHEMAS, NotMigrated, NotSetUp, check_migrated, open_database
from shared.events import EVENT_TYPES
from shared.logs import configure_logging
from shared.messaging import Batching, BatchingConsumer, Consumer, DeadLetters, Handler, Outbox, OutboxRelay, StoreFactory
from shared.metrics import PROCESS, Probes, Scrape, database_answers, outbox_lag
from shared.settings import CannotStart, Settings
from shared.topology import COMMANDS, EVENTS, EXCHANGES, OUTCOMES, TOPOLOGY, QueueSpec, Topology

__all__ = ["GRACEFUL_SECONDS", "NotSetUp", "Service", "http_api", "open_database", "run", "until_reachable"]

T = TypeVar("T")
# Seconds a stop waits for the messages in hand to be finished and acked; the whole stop stays within 10 s.
GRACEFUL_SECONDS = 5.0
# Seconds between two tries to reach RabbitMQ (the next node of a cluster) once the connection was lost.
RECONNECT_SECONDS = 1.0

PUBLISHABLE = [  # (exchange, message type, its routing key as documented, one it goes out with)
    *((EVENTS.name, t, key, key) for key, t in EVENT_TYPES.items()),
    *((COMMANDS.name, t, key, key) for key, t in COMMAND_TYPES.items()),
    (OUTCOMES.name, Outcome, "<source>.<status>", "notula.completed"),
    (OUTCOMES.name, StatusReport, "<source>.status", "notula.status"),
]


def http_api(app: FastStream) -> Any | None:
    """The HTTP app of a service's ``create_app()``, built but not served (for its OpenAPI document); None without one."""
    build = getattr(app, "http_api", None)
    return build() if build is not None else None


class _EmbeddedServer(uvicorn.Server):
    """uvicorn inside our loop: FastStream owns the signals, not uvicorn."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class Service:
    """Wiring for one service; ``app`` is what ``python -m services.<name>`` runs."""

    def __init__(
        self,
        name: str,
        settings: Settings,
        *,
        migrations: Path,
        uses: Sequence[str] = (),
        topology: Topology = TOPOLOGY,
    ) -> None:
        configure_logging(name, settings.log_level, settings.log_format, replica=settings.replica)
        clock.install(clock_from(settings))
        self.name = name
        self.schema = name
        self.settings = settings
        self.topology = topology
        self.identity = read_identity(settings, name)
        self.outbox = Outbox(self.schema)
        self.broker = _broker(self.identity.amqp_url)
        self.dead_letters = DeadLetters(self.broker, self.identity.broker_user)
        self.app = FastStream(
            self.broker, logger=structlog.get_logger(), on_startup=[self._start], after_startup=[self._after_start],
            on_shutdown=[self._stop], after_shutdown=[self._close],
        )
        self._schemas = [(self.schema, migrations, True), *((s, *SHARED_SCHEMAS[s]) for s in uses)]
        self._describe_publications()
        self._queues: list[QueueSpec] = []
        self._pool: asyncpg.Pool | None = None
        self._relay: OutboxRelay | None = None
        self._loops: list[Callable[[], Awaitable[None]]] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._http: tuple[int, Callable[[], Any]] | None = None
        self._scrapes: list[Scrape] = [outbox_lag(lambda: self.pool, self.schema)]
        self._server: _EmbeddedServer | None = None
        # Asked for every message a consumer takes: the answer depends on the routing key alone, so keep it.
        self._trusted = functools.lru_cache(maxsize=256)(functools.partial(topology.trusted_users, settings.broker_user_prefix))

    def _describe_publications(self) -> None:
        """What this service publishes, for the AsyncAPI document (its outbox relay does the publishing)."""
        spec = self.topology.service(self.name)
        for exchange_name, message_type, key, example in PUBLISHABLE:
            if spec.may_publish(exchange_name, example):
                self.broker.publisher(
                    exchange=EXCHANGES[exchange_name],
                    routing_key=key,
                    schema=message_type,
                    title=f"{exchange_name}:{key}",
                    description=(message_type.__doc__ or "").strip(),
                    persist=True,
                )

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError(f"{self.name}: the database pool exists only once the service started")
        return self._pool

    def wake_relay(self) -> None:
        if self._relay is not None:
            self._relay.wake()

    def trusted(self, routing_key: str) -> frozenset[str]:
        """The broker users whose messages with this routing key this service accepts."""
        return self._trusted(routing_key)

    def consume(
        self, spec: QueueSpec, handlers: Mapping[type[BaseModel], Handler], *, store: StoreFactory, prefetch: int | None = None,
        batching: Batching | None = None, **options: Any,
    ) -> Consumer:
        """Consume ``spec``: one typed handler per message type, each called with the message and ``store(conn)``
        in the message's transaction. ``options`` go to :class:`Consumer`: ``unaccepted`` decides what happens to
        anything else (default: parked), ``key`` the inbox key, ``max_body`` the longest body read, ``after_commit``.
        With ``batching``, accepted messages are written in batches (:class:`BatchingConsumer`; ``handlers`` then
        serve a message whose batch failed) and ``prefetch`` should exceed the batch size."""
        if spec not in self.topology.service(self.name).consumes:
            raise ValueError(f"{self.name} does not consume {spec.name} in the topology")
        self._queues.append(spec)
        options.setdefault("after_commit", lambda: None)  # the consumer edge hands what it wrote to the relay itself
        options.setdefault("delivery_limit", self.settings.delivery_limit)
        options.update(
            queue=spec.name, handlers=handlers, pool=lambda: self.pool, schema=self.schema, store=store,
            trusted=self.trusted, dead_letters=self.dead_letters,
        )
        consumer = Consumer(**options) if batching is None else BatchingConsumer(batching=batching, **options)
        if isinstance(consumer, BatchingConsumer):
            self.loop(consumer.run)
        consumer.attach(
            self.broker.subscriber(
                spec.rabbit_queue(),
                spec.bindings[0].exchange,
                channel=Channel(prefetch_count=prefetch or self.settings.prefetch),
                ack_policy=AckPolicy.MANUAL,
                title=spec.name,
                description=spec.description,
            )
        )
        return consumer

    def serve_http(self, port: int, build: Callable[[], Any]) -> None:
        """Serve the ASGI app ``build()`` returns once the pool exists."""
        self._http = (port, build)
        self.app.http_api = build  # type: ignore[attr-defined]  # for http_api(): the OpenAPI documents in docs/

    def scrape(self, read: Scrape) -> None:
        """Run ``read`` (it sets gauges from the database) before each answer of ``/metrics``."""
        self._scrapes.append(read)

    def probes(self) -> Probes:
        """``/readyz``: the database answers, the broker connection is open, every migration is applied."""
        checks = {"database": database_answers(lambda: self.pool), "broker": self._broker_open, "migrations": self._migrated}
        return Probes(checks, self._scrapes)

    async def _broker_open(self) -> bool:
        return await self.broker.ping(timeout=1.0)

    async def _migrated(self) -> bool:
        try:
            for schema, directory, messaging in self._schemas:
                await check_migrated(self.pool, schema, [directory], messaging=messaging)
        except NotMigrated:
            return False
        return True

    def loop(self, body: Callable[[], Awaitable[None]]) -> None:
        """Run ``body`` as a background task for the life of the service."""
        self._loops.append(body)

    async def _start(self) -> None:
        self._pool = await until_reachable("PostgreSQL", self._open_database)
        await until_reachable("RabbitMQ", self._connect_broker)

    async def _open_database(self) -> asyncpg.Pool:
        return await open_database(
            self.settings, self.name, migrations=self._schemas[0][1], uses=[s for s, _, _ in self._schemas[1:]],
            size=self.settings.db_pool_size,
        )

    async def _connect_broker(self) -> None:
        await self.broker.connect()
        await _check_queues(self.identity.amqp_url, self._queues)

    async def _after_start(self) -> None:
        self._relay = OutboxRelay(self.pool, self.broker, self.schema, user_id=self.identity.broker_user, outbox=self.outbox)
        for body in [self._relay.run, *self._loops]:
            self._tasks.append(asyncio.create_task(_forever(body), name=body.__qualname__))
        if self._http is not None:
            port, build = self._http
            app = build()
            app.state.probes = self.probes()  # base_app checks only the database; the service knows the rest
            config = uvicorn.Config(
                app,
                host=self.settings.http_host,
                port=port,
                log_config=None,
                access_log=False,
                http="httptools",  # llhttp (C) parses requests in a fraction of h11's pure-Python time
                lifespan="on",
                timeout_graceful_shutdown=5,  # a request still open after this does not hold up the stop
            )
            self._server = _EmbeddedServer(config)
            sockets = [_shared_socket(self.settings.http_host, port)] if self.settings.http_reuse_port else None
            self._tasks.append(asyncio.create_task(self._server.serve(sockets=sockets), name="http"))
        PROCESS.info({"replica": str(self.settings.replica or 1), "pid": str(os.getpid())})
        structlog.get_logger().info("service started", http_port=self._http[0] if self._http else None)

    async def _stop(self) -> None:
        """Stop taking messages and let the handlers running finish and ack (up to GRACEFUL_SECONDS); stop the
        loops; then send what those handlers wrote to the outbox, so nothing they caused waits for the next start."""
        if self._server is not None:
            self._server.should_exit = True
        await asyncio.gather(*(subscriber.stop() for subscriber in self.broker.subscribers))
        await self._stop_loops()
        await self._flush_outbox()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _stop_loops(self) -> None:
        loops = {task for task in self._tasks if task.get_name() != "http"}
        # Cancel until they end: on Python 3.11 a cancellation that meets a finishing
        # asyncio.wait_for (aiosmtplib's timeouts) can be lost, and the loop would run on.
        while loops:
            for task in loops:
                task.cancel()
            _, loops = await asyncio.wait(loops, timeout=1.0)

    async def _flush_outbox(self) -> None:
        if self._relay is None:
            return
        try:  # the relay's loop has ended, so none of its rows is locked by a publish it gave up
            await asyncio.wait_for(self._relay.publish_pending(), timeout=2)
        except Exception as exc:  # the stop's edge: what is not sent stays in the outbox for the next start
            structlog.get_logger().warning("outbox not flushed at stop; sent at the next start", error=repr(exc))

    async def _close(self) -> None:
        if self._pool is not None:
            try:
                await asyncio.wait_for(self._pool.close(), timeout=5)
            except TimeoutError:
                structlog.get_logger().warning("database connections still busy at stop; closed them")
                self._pool.terminate()
        structlog.get_logger().info("service stopped")


def _unreachable(exc: BaseException) -> bool:
    """The server did not answer (down, starting, restarting), or answered "not now" (every connection slot taken:
    more processes than max_connections was sized for, e.g. replicas starting), as opposed to answering no."""
    amqp = aio_pika.exceptions
    if isinstance(exc, amqp.AMQPError):  # all of them are OSErrors, but only a connection that failed is no answer
        return isinstance(exc, amqp.AMQPConnectionError) and not isinstance(exc, amqp.ProbableAuthenticationError)
    return isinstance(exc, OSError | asyncpg.CannotConnectNowError | asyncpg.TooManyConnectionsError)


async def until_reachable(what: str, attempt: Callable[[], Awaitable[T]], *, longest_wait: float = 5.0) -> T:
    """``attempt()`` until ``what`` answers, waiting longer after each try (at most ``longest_wait``) and saying so."""
    log = structlog.get_logger()
    tries = 0
    while True:
        try:
            return await attempt()
        except Exception as exc:
            if not _unreachable(exc):
                raise
            tries += 1
            wait = min(0.5 * 2**tries, longest_wait)
            log.warning(f"waiting for {what}", error=repr(exc), tries=tries, retry_in=wait)
            await asyncio.sleep(wait)


async def _check_queues(amqp_url: str, queues: Sequence[QueueSpec]) -> None:
    connection = await amqp.connect(amqp_url)
    async with connection:
        for spec in queues:
            channel = await connection.channel()
            try:
                await channel.declare_queue(spec.name, passive=True)
            except aio_pika.exceptions.ChannelClosed:
                raise NotSetUp(f"queue `{spec.name}` does not exist: run `paraaf broker setup`") from None
            await channel.close()


def _shared_socket(host: str, port: int) -> socket.socket:
    """A listening socket that other processes of this service (same user) may bind too: the kernel hands each
    new connection to one of them, so replicas serve one port (the signer's public pages at PARAAF_PUBLIC_URL)."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise CannotStart(f"cannot listen on {host}:{port}: {exc.strerror} (is a process without PARAAF_HTTP_REUSE_PORT on it?)") from None
    return sock


def _broker(amqp_url: str) -> RabbitBroker:
    return amqp.broker(
        amqp_url,  # one node, or a cluster's nodes: then a lost node's connection moves to another (shared/amqp.py)
        default_channel=Channel(publisher_confirms=True, on_return_raises=True),  # the relay keeps what came back
        logger=None,
        graceful_timeout=GRACEFUL_SECONDS,
        reconnect_interval=RECONNECT_SECONDS,
    )


async def _forever(body: Callable[[], Awaitable[None]]) -> None:
    """Keep a background loop alive: log a crash and start it again."""
    log = structlog.get_logger()
    while True:
        try:
            await body()
            return
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("background loop crashed; restarting", loop=body.__qualname__)
            await asyncio.sleep(1.0)


def run(create_app: Callable[[], Service | FastStream]) -> None:
    """Entry point of ``python -m services.<name>``."""
    try:
        made = create_app()
        app = made.app if isinstance(made, Service) else made
        # uvloop: the same asyncio API on libuv; each service's loop (AMQP frames, asyncpg, HTTP) takes ~13 % less
        # CPU a signature than on asyncio's own loop (bench/pipeline, docs/performance.md).
        uvloop.run(app.run())
    except CannotStart as exc:
        structlog.get_logger().error("cannot start", reason=str(exc))
        sys.exit(2)
