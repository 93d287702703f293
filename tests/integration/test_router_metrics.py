"""The router's gauges as Prometheus scrapes them: open requests, and those waiting more than PARAAF_STUCK_AFTER
working days — counted as `paraaf documents` counts them (a weekend does not make a request stuck)."""

from datetime import datetime, timedelta
from pathlib import Path
from uuid import uuid4

import asyncpg

from services.router.metrics import request_gauges
from shared.db import connect_pool, migrate
from shared.metrics import OPEN_REQUESTS, STUCK_REQUESTS

ROUTER = Path(__file__).resolve().parents[2] / "services" / "router" / "migrations"


async def _request(conn: asyncpg.Connection, asked: datetime, status: str = "pending") -> None:
    document_id = uuid4()
    await conn.execute(
        "INSERT INTO router.instances (document_id, org, title, filename, submitted_by, confidential, steps, pdf_sha256)"
        " VALUES ($1, 'default', 't', 't.pdf', '{}', false, '[]', 'x')", document_id,
    )
    await conn.execute(
        "INSERT INTO router.requests (request_id, document_id, org, step, entry, person_id, person, action, status, created_at)"
        " VALUES ($1, $2, 'default', 1, 'person:p', 'p', '{}', 'sign', $3, $4)", uuid4(), document_id, status, asked,
    )


async def test_stuck_counts_working_days_and_open_counts_what_waits(database_url: str) -> None:
    pool = await connect_pool(database_url)
    try:
        await migrate(pool, "router", [ROUTER])
        now = await pool.fetchval("SELECT now()")
        async with pool.acquire() as conn:
            await _request(conn, now - timedelta(days=30))  # stuck
            await _request(conn, now - timedelta(days=2))  # waiting, not stuck
            await _request(conn, now - timedelta(days=30), status="signed")  # done: neither
        await request_gauges(lambda: pool, 5, "Europe/Brussels")()
        assert (OPEN_REQUESTS._value.get(), STUCK_REQUESTS._value.get()) == (2, 1)
        await request_gauges(lambda: pool, 25, "Europe/Brussels")()  # 30 calendar days hold about 21 working days
        assert STUCK_REQUESTS._value.get() == 0
    finally:
        await pool.close()
