"""Bulk signing's record: a run is one confirmed selection of a signer's waiting
requests; each item says what became of one of them (waiting, signed, approved,
or failed and why). The signatures themselves are made one by one through the
same path as a single link (services/signer/http/_signing.py ``sign_once``);
this only keeps what the progress page and the summary show.

A run goes on in the signer process that started it, which holds the run's
lease (a PostgreSQL advisory lock on a connection of its own) until it ends:
every process of the signer can tell a run still going from one cut off by
its process's end, whichever of them the progress page reaches.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg

from shared.db import keeps_session_state

__all__ = ["BulkItem", "BulkRun", "BulkRuns", "hold_run", "release_run", "run_going_on"]

_LEASE = "hashtextextended('paraaf-bulk-run:' || $1::uuid::text, 0)"


async def hold_run(conn: asyncpg.Connection, run_id: UUID) -> None:
    """Take the run's lease on ``conn`` (a connection kept for the run): it lasts until ``release_run`` or until the
    connection ends (the process died), or until the pool takes the connection back (its full reset)."""
    keeps_session_state(conn)
    await conn.execute(f"SELECT pg_advisory_lock({_LEASE})", run_id)


async def release_run(conn: asyncpg.Connection, run_id: UUID) -> None:
    await conn.execute(f"SELECT pg_advisory_unlock({_LEASE})", run_id)


async def run_going_on(conn: asyncpg.Connection, run_id: UUID) -> bool:
    """Whether some signer process holds the run's lease (asked on any other connection)."""
    async with conn.transaction():
        return not await conn.fetchval(f"SELECT pg_try_advisory_xact_lock({_LEASE})", run_id)


@dataclass(frozen=True)
class BulkItem:
    position: int
    request_id: UUID
    title: str
    outcome: str  # waiting, signed, approved, failed
    reason: str | None


@dataclass(frozen=True)
class BulkRun:
    run_id: UUID
    org: str
    person_id: str
    created_at: datetime
    finished_at: datetime | None
    items: tuple[BulkItem, ...]

    @property
    def done(self) -> int:
        return sum(1 for i in self.items if i.outcome != "waiting")

    @property
    def signed(self) -> int:
        return sum(1 for i in self.items if i.outcome in ("signed", "approved"))

    @property
    def failed(self) -> tuple[BulkItem, ...]:
        return tuple(i for i in self.items if i.outcome == "failed")


class BulkRuns:
    """Runs and their items in the signer's schema."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def start(self, run_id: UUID, org: str, person_id: str, items: Sequence[tuple[UUID, str]], now: datetime) -> bool:
        """A new run of (request, title) in this order; False when this run was started before (the same form sent again)."""
        async with self._conn.transaction():
            made = await self._conn.fetchval(
                "INSERT INTO signer.bulk_runs (run_id, org, person_id, created_at) VALUES ($1, $2, $3, $4)"
                " ON CONFLICT DO NOTHING RETURNING run_id",
                run_id, org, person_id, now,
            )
            if made is None:
                return False
            await self._conn.executemany(
                "INSERT INTO signer.bulk_items (run_id, position, request_id, title) VALUES ($1, $2, $3, $4)",
                [(run_id, position, request_id, title) for position, (request_id, title) in enumerate(items)],
            )
        return True

    async def run(self, org: str, person_id: str, run_id: UUID) -> BulkRun | None:
        """Her run (someone else's answers as if it did not exist)."""
        row = await self._conn.fetchrow(
            "SELECT * FROM signer.bulk_runs WHERE run_id = $1 AND org = $2 AND person_id = $3", run_id, org, person_id
        )
        if row is None:
            return None
        items = await self._conn.fetch(
            "SELECT position, request_id, title, outcome, reason FROM signer.bulk_items WHERE run_id = $1 ORDER BY position", run_id
        )
        return BulkRun(
            row["run_id"], row["org"], row["person_id"], row["created_at"], row["finished_at"],
            tuple(BulkItem(i["position"], i["request_id"], i["title"], i["outcome"], i["reason"]) for i in items),
        )

    async def record(self, run_id: UUID, position: int, outcome: str, reason: str | None, now: datetime) -> None:
        await self._conn.execute(
            "UPDATE signer.bulk_items SET outcome = $3, reason = $4, decided_at = $5 WHERE run_id = $1 AND position = $2",
            run_id, position, outcome, reason, now,
        )

    async def finish(self, run_id: UUID, now: datetime) -> None:
        await self._conn.execute("UPDATE signer.bulk_runs SET finished_at = $2 WHERE run_id = $1", run_id, now)
