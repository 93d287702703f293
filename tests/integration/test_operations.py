"""What /readyz and /metrics say about a service built with the shared runtime (the probe service of
tests/support/probe.py) on real RabbitMQ and PostgreSQL."""

import asyncio
from collections.abc import AsyncIterator
from uuid import uuid4

import asyncpg
import httpx
import pytest
from faststream import TestApp
from prometheus_client import REGISTRY

from shared.events import DocumentWithdrawn
from shared.http import base_app
from tests.support.bus import publish_as
from tests.support.probe import PROBE_SCHEMAS, PROBE_SERVICES, PROBE_TOPOLOGY, Probe


@pytest.fixture
async def probe(provision) -> AsyncIterator[Probe]:  # type: ignore[no-untyped-def]
    settings = await provision(PROBE_TOPOLOGY, schemas=PROBE_SCHEMAS, services=PROBE_SERVICES, delivery_limit=1)
    probe = Probe(settings)
    async with TestApp(probe.service.app):
        yield probe


async def _readyz(probe: Probe) -> httpx.Response:
    app = base_app("probe", lambda: probe.service.pool)
    app.state.probes = probe.service.probes()  # as the service's HTTP server is given them
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://probe.test") as client:
        return await client.get("/readyz")


def _consumed(outcome: str) -> float:
    labels = {"queue": "probe.events", "message": "DocumentWithdrawn", "outcome": outcome}
    return REGISTRY.get_sample_value("paraaf_messages_consumed_total", labels) or 0.0


async def _until(condition, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    for _ in range(int(timeout / 0.05)):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met in time")


async def test_readyz_is_200_when_set_up_and_names_migrations_once_one_is_missing(probe: Probe, database_url: str) -> None:
    """A running, migrated service is ready; with a migration of its schema not applied, /readyz is 503 `migrations`."""
    assert (await _readyz(probe)).status_code == 200
    conn = await asyncpg.connect(database_url)
    await conn.execute("DELETE FROM probe.schema_migrations WHERE version = 1")
    await conn.close()
    answer = await _readyz(probe)
    assert answer.status_code == 503 and answer.json()["failed"] == ["migrations"]


async def test_readyz_names_the_broker_when_its_connection_is_closed(probe: Probe) -> None:
    """With the broker connection closed, /readyz is 503 naming `broker` (and only it)."""
    await probe.service.broker.stop()
    answer = await _readyz(probe)
    assert answer.status_code == 503 and answer.json()["failed"] == ["broker"]


async def test_the_consumer_edge_counts_handled_duplicate_and_dead_lettered_messages(probe: Probe) -> None:
    """An event twice counts one `handled` and one `duplicate`; one whose handler always fails, `dead_lettered`."""
    before = {outcome: _consumed(outcome) for outcome in ("handled", "duplicate", "dead_lettered", "retried")}
    event, poison = (DocumentWithdrawn(correlation_id=uuid4(), withdrawn_by="elen.elaut", reason="test") for _ in range(2))
    probe.poison.add(poison.event_id)
    await publish_as(probe.settings, "router", event, event, poison)
    await _until(lambda: _consumed("dead_lettered") > before["dead_lettered"] and _consumed("duplicate") > before["duplicate"])
    assert _consumed("handled") - before["handled"] == 1
    assert _consumed("duplicate") - before["duplicate"] == 1
    assert _consumed("dead_lettered") - before["dead_lettered"] == 1
    assert _consumed("retried") - before["retried"] == 1  # delivery limit 1: one retry, then parked
