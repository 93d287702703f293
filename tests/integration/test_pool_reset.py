"""What a pooled connection carries back to the pool (shared/db.py): no reset round trip after ordinary use, and a
full reset, releasing a session's advisory lock, after a connection marked as keeping session state."""

import asyncpg

from shared.db import connect_pool, keeps_session_state

LOCK = 4242


async def _last_query(admin: asyncpg.Connection, pid: int) -> str:
    return await admin.fetchval("SELECT query FROM pg_stat_activity WHERE pid = $1", pid)


async def test_an_ordinary_release_sends_nothing_more(database_url: str) -> None:
    pool = await connect_pool(database_url, max_size=1)
    admin = await asyncpg.connect(database_url)
    try:
        async with pool.acquire() as conn, conn.transaction():
            pid = await conn.fetchval("SELECT pg_backend_pid()")
        async with pool.acquire() as conn:
            assert await conn.fetchval("SELECT pg_backend_pid()") == pid  # the same connection, taken again
        assert await _last_query(admin, pid) == "SELECT pg_backend_pid()"  # no reset query after it
    finally:
        await admin.close()
        await pool.close()


async def test_a_marked_connection_is_reset_and_its_lock_released(database_url: str) -> None:
    pool = await connect_pool(database_url, max_size=1)
    admin = await asyncpg.connect(database_url)
    try:
        async with pool.acquire() as conn:
            pid = await conn.fetchval("SELECT pg_backend_pid()")
            keeps_session_state(conn)
            await conn.execute("SELECT pg_advisory_lock($1)", LOCK)  # and never unlocked: its holder failed
        assert "pg_advisory_unlock_all" in await _last_query(admin, pid)
        assert await admin.fetchval("SELECT pg_try_advisory_lock($1)", LOCK), "the lock outlived its connection's use"
        async with pool.acquire() as conn:  # the mark went with the reset: the next use is ordinary again
            await conn.fetchval("SELECT 1")
        assert await _last_query(admin, pid) == "SELECT 1"
    finally:
        await admin.close()
        await pool.close()


async def test_without_the_mark_a_session_lock_would_pass_on(database_url: str) -> None:
    """Why the mark matters: an unmarked connection keeps a session's lock for whoever takes it next."""
    pool = await connect_pool(database_url, max_size=1)
    admin = await asyncpg.connect(database_url)
    try:
        async with pool.acquire() as conn:
            await conn.execute("SELECT pg_advisory_lock($1)", LOCK)
        assert not await admin.fetchval("SELECT pg_try_advisory_lock($1)", LOCK)
    finally:
        await admin.close()
        await pool.close()
