"""The audit log on its own in a test's database: its schema migrated, and events appended as the audit service does."""

from datetime import UTC, datetime
from pathlib import Path
from uuid import uuid4

import asyncpg

from services.audit.store import PostgresAuditStore

__all__ = ["MIGRATIONS", "record"]

MIGRATIONS = Path(__file__).resolve().parents[2] / "services" / "audit" / "migrations"


async def record(pool: asyncpg.Pool, count: int) -> None:
    """``count`` events appended one transaction each; their keys out of order, as events arrive."""
    async with pool.acquire() as conn:
        for n in range(count):
            async with conn.transaction():
                event = {"event_id": str(uuid4()), "occurred_at": datetime.now(UTC).isoformat(), "n": n, "b": {"z": 1, "a": 2}}
                await PostgresAuditStore(conn).append("document.submitted", event)
