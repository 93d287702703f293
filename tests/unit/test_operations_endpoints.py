"""Every service's /healthz, /readyz and /metrics: what an orchestrator and Prometheus ask of it."""

from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest

from shared.http import base_app
from shared.metrics import OUTBOX_LAG, Probes
from tests.support.net import free_port


@pytest.fixture
async def unreachable_pool() -> AsyncIterator[asyncpg.Pool]:
    """A real pool to a port where nothing listens: every query it is asked fails to connect."""
    pool = await asyncpg.create_pool(f"postgresql://paraaf_router@127.0.0.1:{free_port()}/paraaf", min_size=0, max_size=1)
    yield pool
    await pool.close()


def _client(app: object) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://router.test")  # type: ignore[arg-type]


async def _yes() -> bool:
    return True


async def _no() -> bool:
    return False


async def test_healthz_answers_200_with_the_database_away(unreachable_pool: asyncpg.Pool) -> None:
    """/healthz says the process is alive even when its database is not: a restart would not bring the database back."""
    async with _client(base_app("router", lambda: unreachable_pool)) as client:
        answer = await client.get("/healthz")
    assert answer.status_code == 200
    assert answer.json() == {"service": "router", "status": "alive"}


async def test_readyz_with_the_database_away_is_503_naming_the_database_and_nothing_more(unreachable_pool: asyncpg.Pool) -> None:
    """/readyz answers 503 and names the failed check `database`, without host, port or error text."""
    async with _client(base_app("router", lambda: unreachable_pool)) as client:
        answer = await client.get("/readyz")
    assert answer.status_code == 503
    assert answer.json() == {"service": "router", "status": "not ready", "failed": ["database"]}
    assert "127.0.0.1" not in answer.text and "refused" not in answer.text.lower()


async def test_readyz_names_each_failed_check_and_is_200_when_all_pass() -> None:
    """The service's own checks decide: 503 naming only those that failed, 200 once every one passes."""
    app = base_app("signer", lambda: None)  # type: ignore[arg-type]
    async with _client(app) as client:
        app.state.probes = Probes({"database": _yes, "broker": _no, "migrations": _no})
        failing = await client.get("/readyz")
        app.state.probes = Probes({"database": _yes, "broker": _yes, "migrations": _yes})
        passing = await client.get("/readyz")
    assert failing.status_code == 503 and failing.json()["failed"] == ["broker", "migrations"]
    assert passing.status_code == 200 and passing.json() == {"service": "signer", "status": "ready", "failed": []}


async def test_metrics_are_prometheus_text_with_the_database_gauges_read_at_scrape_time() -> None:
    """/metrics answers Prometheus's text format, with the paraaf_ metrics and a gauge its scrape just set."""

    async def outbox_waits_12_seconds() -> None:
        OUTBOX_LAG.set(12.5)

    app = base_app("audit", lambda: None)  # type: ignore[arg-type]
    app.state.probes = Probes({}, [outbox_waits_12_seconds])
    async with _client(app) as client:
        answer = await client.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert "paraaf_outbox_lag_seconds 12.5" in answer.text
    for name in ("paraaf_messages_consumed_total", "paraaf_handler_seconds", "paraaf_mails_sent_total", "paraaf_signatures_total"):
        assert f"# TYPE {name.removesuffix('_total')}" in answer.text
