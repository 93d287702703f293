"""The runtime every service shares: one FastStream app holding the broker,
the database pool, migrations, topology, the outbox relay, the service's
consumers, its HTTP server and its background loops.

A service's ``main.create_app`` describes *what* it consumes and serves;
this module makes it run, and stop cleanly on SIGINT/SIGTERM.
"""

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import asyncpg
import structlog
import uvicorn
from faststream import AckPolicy, FastStream
from faststream.rabbit import Channel, RabbitBroker
from faststream.rabbit.annotations import RabbitMessage

from shared.blobs import migrate_blobs
from shared.db import connect_pool, ensure_database, migrate
from shared.logs import configure_logging
from shared.messaging import Handler, Outbox, OutboxRelay, event_consumer
from shared.settings import Settings
from shared.topology import QueueSpec, declare_topology, holding_queue

__all__ = ["Service", "run"]


class _EmbeddedServer(uvicorn.Server):
    """uvicorn inside our loop: FastStream owns the signals, not uvicorn."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class Service:
    """Wiring for one service; ``app`` is what ``python -m services.<name>`` runs."""

    def __init__(self, name: str, settings: Settings, *, migrations: Path, uses_blobs: bool = False) -> None:
        configure_logging(name, settings.log_level, settings.log_format)
        self.name = name
        self.schema = name
        self.settings = settings
        self.outbox = Outbox(self.schema)
        self.broker = RabbitBroker(
            settings.amqp_url,
            default_channel=Channel(publisher_confirms=True),
            logger=None,
        )
        self.app = FastStream(
            self.broker,
            logger=structlog.get_logger(),
            on_startup=[self._start],
            after_startup=[self._after_start],
            on_shutdown=[self._stop],
            after_shutdown=[self._close],
        )
        self._migrations = migrations
        self._uses_blobs = uses_blobs
        self._queues: list[QueueSpec] = []
        self._holding: list[str] = []
        self._pool: asyncpg.Pool | None = None
        self._relay: OutboxRelay | None = None
        self._loops: list[Callable[[], Awaitable[None]]] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._http: tuple[int, Callable[[], Any]] | None = None
        self._server: _EmbeddedServer | None = None

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError(f"{self.name}: the database pool exists only once the service started")
        return self._pool

    def wake_relay(self) -> None:
        if self._relay is not None:
            self._relay.wake()

    def consume(
        self,
        spec: QueueSpec,
        handlers: Mapping[str, Handler],
        *,
        prefetch: int | None = None,
        after_commit: Callable[[], None] | None = None,
    ) -> None:
        """Consume the events and commands of ``spec`` with one handler per routing key."""
        self.subscribe(
            spec,
            event_consumer(
                pool=lambda: self.pool,
                consumer=spec.name,
                schema=self.schema,
                handlers=handlers,
                after_commit=after_commit or self.wake_relay,
            ),
            prefetch=prefetch,
        )

    def subscribe(self, spec: QueueSpec, on_message: Callable[..., Awaitable[None]], *, prefetch: int | None = None) -> None:
        """Attach a raw subscriber body (it acks itself) to ``spec``."""
        self._queues.append(spec)
        self.broker.subscriber(
            spec.rabbit_queue(self.settings.delivery_limit),
            spec.bindings[0].exchange,
            channel=Channel(prefetch_count=prefetch or self.settings.prefetch),
            ack_policy=AckPolicy.MANUAL,
            # Bodies reach our code as bytes: FastStream must not parse JSON (and fail) before we can answer.
            decoder=_raw_body,
            title=spec.name,
        )(on_message)

    def hold(self, queue: str) -> None:
        """Declare a queue that only keeps messages for operators (e.g. ``intake.rejected``)."""
        self._holding.append(queue)

    def serve_http(self, port: int, build: Callable[[], Any]) -> None:
        """Serve the ASGI app ``build()`` returns once the pool exists."""
        self._http = (port, build)

    def loop(self, body: Callable[[], Awaitable[None]]) -> None:
        """Run ``body`` as a background task for the life of the service."""
        self._loops.append(body)

    async def _start(self) -> None:
        await ensure_database(self.settings.database_url)
        self._pool = await connect_pool(self.settings.database_url, max_size=self.settings.db_pool_size)
        if self._uses_blobs:
            await migrate_blobs(self._pool)
        await migrate(self._pool, self.schema, [self._migrations])
        await self.broker.connect()
        await declare_topology(self.broker, self._queues, delivery_limit=self.settings.delivery_limit)
        for name in self._holding:
            await self.broker.declare_queue(holding_queue(name))

    async def _after_start(self) -> None:
        self._relay = OutboxRelay(self.pool, self.broker, self.schema)
        for body in [self._relay.run, *self._loops]:
            self._tasks.append(asyncio.create_task(_forever(body), name=body.__qualname__))
        if self._http is not None:
            port, build = self._http
            config = uvicorn.Config(
                build(), host=self.settings.http_host, port=port, log_config=None, access_log=False, lifespan="on"
            )
            self._server = _EmbeddedServer(config)
            self._tasks.append(asyncio.create_task(self._server.serve(), name="http"))
        structlog.get_logger().info("service started", http_port=self._http[0] if self._http else None)

    async def _stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        for task in self._tasks:
            if task.get_name() != "http":
                task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
        structlog.get_logger().info("service stopped")


async def _raw_body(msg: RabbitMessage) -> bytes:
    return msg.body


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
    made = create_app()
    app = made.app if isinstance(made, Service) else made
    asyncio.run(app.run())
