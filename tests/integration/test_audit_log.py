"""The audit log on real PostgreSQL: append-only, and any tampering is found."""


import asyncpg
import pytest

from services.audit import handlers
from services.audit.store import PostgresAuditStore
from shared.db import migrate
from tests.support.audit_log import MIGRATIONS, record


async def test_a_written_log_verifies(audit_pool: asyncpg.Pool) -> None:
    """Ten recorded events verify as an intact chain of ten."""
    await record(audit_pool, 10)
    async with audit_pool.acquire() as conn, conn.transaction():
        assert await handlers.verify(PostgresAuditStore(conn)) == (10, None)


async def test_the_log_refuses_updates_and_deletes(audit_pool: asyncpg.Pool) -> None:
    """Nobody can change or remove an entry through SQL without disabling the guard first."""
    await record(audit_pool, 2)
    with pytest.raises(asyncpg.RaiseError, match="append-only"):
        await audit_pool.execute("UPDATE audit.log SET payload = '{}' WHERE seq = 1")
    with pytest.raises(asyncpg.RaiseError, match="append-only"):
        await audit_pool.execute("DELETE FROM audit.log WHERE seq = 2")


async def test_tampering_past_the_guard_is_found_at_the_changed_entry(audit_pool: asyncpg.Pool) -> None:
    """An entry edited by someone who disabled the trigger breaks the chain exactly there."""
    await record(audit_pool, 5)
    async with audit_pool.acquire() as conn:
        await conn.execute("ALTER TABLE audit.log DISABLE TRIGGER log_append_only")
        await conn.execute("UPDATE audit.log SET payload = replace(payload, '\"n\":2', '\"n\":9') WHERE seq = 3")
        async with conn.transaction():
            entries, problem = await handlers.verify(PostgresAuditStore(conn))
    assert entries == 5
    assert problem is not None and problem.seq == 3


async def test_a_removed_last_entry_is_found(audit_pool: asyncpg.Pool) -> None:
    """Deleting the newest entry is noticed: the chain's head no longer matches."""
    await record(audit_pool, 3)
    async with audit_pool.acquire() as conn:
        await conn.execute("ALTER TABLE audit.log DISABLE TRIGGER log_append_only")
        await conn.execute("DELETE FROM audit.log WHERE seq = 3")
        async with conn.transaction():
            _, problem = await handlers.verify(PostgresAuditStore(conn))
    assert problem is not None and "removed" in problem.reason


async def test_migrations_run_once(audit_pool: asyncpg.Pool) -> None:
    """Applying the migrations again applies nothing and keeps the data."""
    await record(audit_pool, 1)
    assert await migrate(audit_pool, "audit", [MIGRATIONS]) == []
    assert await audit_pool.fetchval("SELECT count(*) FROM audit.log") == 1
