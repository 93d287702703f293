"""The absence scheduler: when an absence starts — now, or later at its start
time — the absent person's open requests move to their substitutes.

It runs inside the router (no cron job outside the service). It wakes at the
next absence's start, every half minute anyway, and at once when someone
adds an absence (PostgreSQL NOTIFY). Each absence is applied once, in one
transaction with the requests it moves; an absence that ends pulls nothing back.
"""

from collections.abc import Callable
from datetime import timedelta

import asyncpg
import structlog

from services.router import handlers
from services.router.directory import ABSENCES_CHANNEL, DirectoryCache
from shared.clock import Clock
from shared.messaging import Outbox
from shared.wakeup import Wakeup

__all__ = ["AbsenceScheduler"]

MAX_SLEEP = timedelta(seconds=30)


class AbsenceScheduler:
    def __init__(
        self,
        pool: Callable[[], asyncpg.Pool],
        *,
        database_url: str,
        directories: DirectoryCache,
        outbox: Outbox,
        clock: Clock,
        after_commit: Callable[[], None],
    ) -> None:
        self._pool = pool
        self._database_url = database_url
        self._directories = directories
        self._outbox = outbox
        self._clock = clock
        self._after_commit = after_commit
        self._wake = Wakeup()

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        listener = await asyncpg.connect(self._database_url)
        await listener.add_listener(ABSENCES_CHANNEL, lambda *_: self._wake.set())
        try:
            while True:
                await self.apply_due()
                await self._wake.sleep(await self._seconds_to_next())
        finally:
            await listener.close()

    async def _seconds_to_next(self) -> float:
        now = self._clock()
        next_start = await self._pool().fetchval(
            "SELECT min(starts_at) FROM router.absences WHERE applied_at IS NULL AND starts_at > $1", now
        )
        wait = min(next_start - now, MAX_SLEEP) if next_start else MAX_SLEEP
        return max(wait.total_seconds(), 0.05)

    async def apply_due(self) -> int:
        """Apply every absence that has started and not been applied; return how many requests moved."""
        now = self._clock()
        moved = 0
        async with self._pool().acquire() as conn, conn.transaction():
            await conn.execute(
                "UPDATE router.absences SET applied_at = $1 WHERE applied_at IS NULL AND ends_at <= $1", now
            )
            due = await conn.fetch(
                "SELECT id, org, person_id FROM router.absences"
                " WHERE applied_at IS NULL AND starts_at <= $1 AND ends_at > $1 ORDER BY starts_at FOR UPDATE SKIP LOCKED",
                now,
            )
            for absence in due:
                directory = await self._directories.get(conn, absence["org"])
                count = await handlers.move_work_of(
                    conn,
                    absence["org"],
                    absence["person_id"],
                    directory,
                    now,
                    absence_id=absence["id"],
                    outbox=self._outbox,
                )
                await conn.execute("UPDATE router.absences SET applied_at = $2 WHERE id = $1", absence["id"], now)
                structlog.get_logger().info(
                    "absence started; requests moved", person_id=absence["person_id"], moved=count
                )
                moved += count
        if due:
            self._after_commit()
        return moved
