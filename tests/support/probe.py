"""A minimal service built with the shared runtime (shared/service.py), for tests of delivery, stop and start-up:
it consumes ``document.withdrawn`` on queue ``probe.events``, records one row per effect and publishes
``document.completed``. Its handler's behaviour is set per test; ``python -m tests.support.probe`` runs it as its
own process (settings from the environment, as a real service; ``PARAAF_PROBE_SLOW_SECONDS`` makes each message
take that long, ``PARAAF_PROBE_PORT`` serves ``/health``)."""

import asyncio
import os
from pathlib import Path
from uuid import UUID

import asyncpg
import structlog

from services.admin.database import SCHEMAS, SERVICES, SchemaSpec
from shared.events import DocumentCompleted, DocumentWithdrawn
from shared.http import base_app
from shared.service import Service, run
from shared.settings import Settings
from shared.topology import DLX, EVENTS, TOPOLOGY, Binding, QueueSpec, ServiceSpec

__all__ = ["MIGRATIONS", "PROBE", "PROBE_SCHEMAS", "PROBE_SERVICES", "PROBE_TOPOLOGY", "QUEUE", "Probe"]

QUEUE = QueueSpec("probe.events", (Binding(EVENTS, DocumentWithdrawn.routing_key),))
MIGRATIONS = Path(__file__).resolve().parents[1] / "integration" / "probe_migrations"
PROBE = ServiceSpec("probe", consumes=(QUEUE,), publishes={EVENTS.name: (r"document\.completed",), DLX.name: (".*",)})
PROBE_TOPOLOGY = TOPOLOGY.with_services(PROBE)
PROBE_SCHEMAS = (*SCHEMAS, SchemaSpec("probe", "probe", (MIGRATIONS,)))
PROBE_SERVICES = (*SERVICES, "probe")


class Probe:
    """The probe service; ``fail``, ``poison`` and ``slow`` decide what its handler does."""

    def __init__(self, settings: Settings, *, slow: float = 0.0) -> None:
        self.settings = settings
        self.service = Service("probe", settings, migrations=MIGRATIONS, topology=PROBE_TOPOLOGY)
        self.calls = 0
        self.fail = False
        self.slow = slow
        self.poison: set[UUID] = set()  # events whose handling always fails
        self.service.consume(QUEUE, {DocumentWithdrawn: self.handle}, store=lambda conn: conn)

    async def handle(self, event: DocumentWithdrawn, conn: asyncpg.Connection) -> None:
        self.calls += 1
        structlog.get_logger().info("probe handling", event_id=str(event.event_id))
        await asyncio.sleep(self.slow)
        if self.fail or event.event_id in self.poison:
            raise RuntimeError("the handler's dependency is down")
        await conn.execute("INSERT INTO probe.effects (event_id) VALUES ($1)", event.event_id)
        await self.service.outbox.add(
            conn, DocumentCompleted.caused_by(event, pdf_sha256="0" * 64, signatures=[], title="done")
        )


def _as_process() -> Service:
    probe = Probe(Settings(), slow=float(os.environ.get("PARAAF_PROBE_SLOW_SECONDS", "0")))
    if port := os.environ.get("PARAAF_PROBE_PORT"):
        probe.service.serve_http(int(port), lambda: base_app("probe", lambda: probe.service.pool))
    return probe.service


if __name__ == "__main__":
    run(_as_process)
