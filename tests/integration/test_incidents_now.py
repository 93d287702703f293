"""The one reading of what needs a person that `paraaf incidents` prints and the operators' page shows, on a real
PostgreSQL: the database's incidents and the queues holding dead letters, less the dismissed, oldest first."""

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import uuid4

import asyncpg
import pytest

from services.audit.store import PostgresAuditStore
from services.intake.config import MIGRATIONS as INTAKE
from services.ops.incidents import incidents_now
from shared import blobs
from shared.db import connect_pool, migrate
from tests.support.audit_log import MIGRATIONS as AUDIT

ROUTER = Path(__file__).resolve().parents[2] / "services" / "router" / "migrations"
NOW = datetime.now(UTC)
QUEUES = [("router.events.dlq", 2), ("notifier.events.dlq", 0)]


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    """The schemas incidents are read from: the audit log, the router's requests, intake's documents."""
    pool = await connect_pool(database_url)
    await migrate(pool, "audit", [AUDIT])
    await migrate(pool, "router", [ROUTER])
    await migrate(pool, "blobs", [blobs.MIGRATIONS], messaging=False)
    await migrate(pool, "intake", [INTAKE])
    yield pool
    await pool.close()


def _event(org: str, hours_ago: float, **fields: object) -> dict[str, object]:
    occurred = NOW - timedelta(hours=hours_ago)
    return {"event_id": str(uuid4()), "occurred_at": occurred.isoformat(), "org": org, "correlation_id": str(uuid4()), **fields}


async def _abandoned(pool: asyncpg.Pool, org: str, hours_ago: float) -> str:
    """A webhook delivery of ``org``'s given up ``hours_ago``; its incident id."""
    delivery = uuid4()
    event = _event(
        org, hours_ago, delivery_id=str(delivery), source="kassa", url="https://kassa.example/", attempts=9, reason="503"
    )
    async with pool.acquire() as conn, conn.transaction():
        await PostgresAuditStore(conn).append("webhook.abandoned", event)
    return f"webhook:{delivery}"


async def _dismiss(pool: asyncpg.Pool, org: str, incident: str) -> None:
    event = _event(org, 0, incident=incident, dismissed_by="operator:ann.aerts", reason="handled by phone")
    async with pool.acquire() as conn, conn.transaction():
        await PostgresAuditStore(conn).append("incident.dismissed", event)


async def _now(pool: asyncpg.Pool, org: str | None) -> list[str]:
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        return [i.id for i in await incidents_now(conn, NOW, QUEUES, stuck_after=5, timezone="Europe/Brussels", org=org)]


async def test_the_listing_is_the_databases_incidents_and_full_queues_less_the_dismissed_oldest_first(pool: asyncpg.Pool) -> None:
    """Every org's undismissed incidents by age, then each queue holding messages (an empty one is none); an org's
    operator sees only her org's and the queues."""
    older, dismissed = await _abandoned(pool, "default", 5), await _abandoned(pool, "default", 3)
    elsewhere = await _abandoned(pool, "gent", 1)
    await _dismiss(pool, "default", dismissed)
    assert await _now(pool, None) == [older, elsewhere, "dead_letters:router.events.dlq"]
    assert await _now(pool, "default") == [older, "dead_letters:router.events.dlq"]
    assert await _now(pool, "gent") == [elsewhere, "dead_letters:router.events.dlq"]
