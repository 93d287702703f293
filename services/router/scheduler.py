"""The absence scheduler: when an absence starts — now, or later at its start
time — the absent person's open requests move to their substitutes.

It runs inside the router (no cron job outside the service). It wakes at the
next absence's start, every half minute anyway, and at once when someone
adds an absence (PostgreSQL NOTIFY). Each absence is applied once, in one
transaction with the requests it moves; an absence that ends pulls nothing back.
"""

from collections.abc import Callable
from datetime import datetime, timedelta

import asyncpg
import structlog

from services.router import handlers
from services.router.directory import DirectoryCache
from services.router.store import ABSENCES_CHANNEL, PostgresRouterStore, RouterStore, StoredAbsence
from shared.clock import Clock
from shared.loops import BackgroundLoop
from shared.messaging import Outbox

__all__ = ["AbsenceScheduler", "apply_started_absences"]

MAX_SLEEP = timedelta(seconds=30)


async def apply_started_absences(store: RouterStore, directories: DirectoryCache, now: datetime) -> int:
    """Apply every absence that has begun and not been applied; return how many requests moved."""
    moved = 0
    for stored in await store.unapplied_absences(started_by=now):
        if stored.absence.phase(now) == "running":
            moved += await _apply(store, directories, stored, now)
        await store.mark_applied(stored.id, now)
    return moved


async def _apply(store: RouterStore, directories: DirectoryCache, stored: StoredAbsence, now: datetime) -> int:
    directory = await directories.get(store, stored.org)
    count = await handlers.move_work_of(store, stored.org, stored.absence.person_id, directory, now, absence_id=stored.id)
    structlog.get_logger().info("absence started; requests moved", person_id=stored.absence.person_id, moved=count)
    return count


class AbsenceScheduler(BackgroundLoop):
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
        super().__init__(MAX_SLEEP.total_seconds())
        self._pool = pool
        self._database_url = database_url
        self._directories = directories
        self._outbox = outbox
        self._clock = clock
        self._after_commit = after_commit

    async def run(self) -> None:
        listener = await asyncpg.connect(self._database_url)
        await listener.add_listener(ABSENCES_CHANNEL, lambda *_: self.wake())
        try:
            await super().run()
        finally:
            await listener.close()

    async def tick(self) -> bool:
        await self.apply_due()
        return False

    async def pause(self) -> float:
        now = self._clock()
        async with self._pool().acquire() as conn:
            next_start = await PostgresRouterStore(conn, self._outbox).next_absence_start(now)
        wait = min(next_start - now, MAX_SLEEP) if next_start else MAX_SLEEP
        return max(wait.total_seconds(), 0.05)

    async def apply_due(self) -> int:
        async with self._pool().acquire() as conn, conn.transaction():
            moved = await apply_started_absences(PostgresRouterStore(conn, self._outbox), self._directories, self._clock())
        self._after_commit()  # moved requests, or alerts when nobody could take them: the relay sends them now
        return moved
