"""The audit log on real PostgreSQL: append-only, and any tampering is found."""

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from uuid import uuid4

import asyncpg
import pytest

from services.audit import handlers
from services.audit.store import PostgresAuditStore
from shared.db import connect_pool, migrate

MIGRATIONS = Path(__file__).resolve().parents[2] / "services" / "audit" / "migrations"


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await connect_pool(database_url)
    await migrate(pool, "audit", [MIGRATIONS])
    yield pool
    await pool.close()


async def record(pool: asyncpg.Pool, count: int) -> None:
    async with pool.acquire() as conn:
        for n in range(count):
            async with conn.transaction():
                event = {"event_id": str(uuid4()), "occurred_at": datetime.now(UTC).isoformat(), "n": n, "b": {"z": 1, "a": 2}}
                await PostgresAuditStore(conn).append("document.submitted", event)


async def test_a_written_log_verifies(pool: asyncpg.Pool) -> None:
    """Ten recorded events verify as an intact chain of ten."""
    await record(pool, 10)
    async with pool.acquire() as conn, conn.transaction():
        assert await handlers.verify(PostgresAuditStore(conn)) == (10, None)


async def test_the_log_refuses_updates_and_deletes(pool: asyncpg.Pool) -> None:
    """Nobody can change or remove an entry through SQL without disabling the guard first."""
    await record(pool, 2)
    with pytest.raises(asyncpg.RaiseError, match="append-only"):
        await pool.execute("UPDATE audit.log SET payload = '{}' WHERE seq = 1")
    with pytest.raises(asyncpg.RaiseError, match="append-only"):
        await pool.execute("DELETE FROM audit.log WHERE seq = 2")


async def test_tampering_past_the_guard_is_found_at_the_changed_entry(pool: asyncpg.Pool) -> None:
    """An entry edited by someone who disabled the trigger breaks the chain exactly there."""
    await record(pool, 5)
    async with pool.acquire() as conn:
        await conn.execute("ALTER TABLE audit.log DISABLE TRIGGER log_append_only")
        await conn.execute("UPDATE audit.log SET payload = replace(payload, '\"n\":2', '\"n\":9') WHERE seq = 3")
        async with conn.transaction():
            entries, problem = await handlers.verify(PostgresAuditStore(conn))
    assert entries == 5
    assert problem is not None and problem.seq == 3


async def test_a_removed_last_entry_is_found(pool: asyncpg.Pool) -> None:
    """Deleting the newest entry is noticed: the chain's head no longer matches."""
    await record(pool, 3)
    async with pool.acquire() as conn:
        await conn.execute("ALTER TABLE audit.log DISABLE TRIGGER log_append_only")
        await conn.execute("DELETE FROM audit.log WHERE seq = 3")
        async with conn.transaction():
            _, problem = await handlers.verify(PostgresAuditStore(conn))
    assert problem is not None and "removed" in problem.reason


async def test_migrations_run_once(pool: asyncpg.Pool) -> None:
    """Applying the migrations again applies nothing and keeps the data."""
    await record(pool, 1)
    assert await migrate(pool, "audit", [MIGRATIONS]) == []
    assert await pool.fetchval("SELECT count(*) FROM audit.log") == 1
