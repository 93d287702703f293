"""The audit log as it grows, for the operators' live stream (/p/ops/events):
one listener per signer process, fanned out to every open stream.

The audit log's ``seq`` is the stream's event id: entries are visible in seq
order (appends hold the chain's head row), so a stream that sent everything up
to ``seq`` n and asks for ``seq > n`` misses nothing and repeats nothing,
whichever process or connection it asks. The listener keeps the latest
entries in memory and wakes the streams when the log grew: on the NOTIFY the
log's statement trigger sends at commit (services/audit/migrations/003), and
on a short poll besides, so a notification lost with a dropped connection
delays an entry by at most ``poll`` seconds. A stream further behind than
what is kept reads the log itself, in batches.
"""

import asyncio
import contextlib
import json
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any
from uuid import UUID

import asyncpg

__all__ = ["CHANNEL", "AuditFeed", "LogEntry", "read_after"]

CHANNEL = "audit_log"
BATCH = 500
_AFTER = "SELECT seq, org, document_id, routing_key, payload FROM audit.log WHERE seq > $1 ORDER BY seq LIMIT $2"


@dataclass(eq=False)
class LogEntry:
    """One entry of the audit log; its event is parsed once, when a stream first needs it."""

    seq: int
    org: str
    document_id: UUID | None
    routing_key: str
    payload: str = field(repr=False)

    @cached_property
    def event(self) -> dict[str, Any]:
        return json.loads(self.payload)["event"]


def _entry(row: asyncpg.Record) -> LogEntry:
    return LogEntry(row["seq"], row["org"], row["document_id"], row["routing_key"], row["payload"])


async def read_after(conn: asyncpg.Connection | asyncpg.Pool, seq: int, limit: int = BATCH) -> list[LogEntry]:
    """Up to ``limit`` entries after ``seq``, in order."""
    return [_entry(row) for row in await conn.fetch(_AFTER, seq, limit)]


class AuditFeed:
    """Follows the audit log on one connection of its own; streams ask it what came after their last entry."""

    def __init__(self, connect: Callable[[], Awaitable[asyncpg.Connection]], *, poll: float = 2.0, keep: int = 2000) -> None:
        self._connect, self._poll = connect, poll
        self._recent: deque[LogEntry] = deque(maxlen=keep)
        self._floor: int | None = None  # what is kept covers every entry after this seq (None: not started)
        self._last = 0
        self._grew = asyncio.Event()
        self.listening = asyncio.Event()  # set once a notification would reach it
        self.closed = False

    @property
    def grew(self) -> asyncio.Event:
        """Set once the log grows after this moment (or the feed closes): take it before reading, then wait on it."""
        return self._grew

    async def run(self) -> None:
        """The service loop: listen, read what is new, wake the streams; on stop, end every stream."""
        conn = await self._connect()
        woken = asyncio.Event()
        try:
            await conn.add_listener(CHANNEL, lambda *_: woken.set())
            self.listening.set()
            if self._floor is None:  # streams read what came before the feed started from the log itself
                self._floor = self._last = await conn.fetchval("SELECT coalesce(max(seq), 0) FROM audit.log")
            while True:
                woken.clear()
                await self._read(conn)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(woken.wait(), self._poll)
        except asyncio.CancelledError:
            self.close()
            raise
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), 2)
            if not conn.is_closed():
                conn.terminate()

    async def _read(self, conn: asyncpg.Connection) -> None:
        grown = False
        while batch := await read_after(conn, self._last):
            self._recent.extend(batch)
            self._last, grown = batch[-1].seq, True
            if len(self._recent) == self._recent.maxlen:
                self._floor = self._recent[0].seq - 1
            if len(batch) < BATCH:
                break
        if grown:
            self._wake()

    def _wake(self) -> None:
        woken, self._grew = self._grew, asyncio.Event()
        woken.set()

    def close(self) -> None:
        """End every stream now (the service is stopping): uvicorn then has no open response to wait for."""
        self.closed = True
        self._wake()

    async def after(self, pool: asyncpg.Pool, seq: int) -> list[LogEntry]:
        """The entries after ``seq`` (a batch at most): from memory when it reaches back that far, else from the log."""
        if self._floor is None or seq < self._floor:
            return await read_after(pool, seq)
        newer = []
        for entry in reversed(self._recent):
            if entry.seq <= seq:
                break
            newer.append(entry)
        return newer[::-1][:BATCH]

    async def latest(self, pool: asyncpg.Pool) -> int:
        """The last entry's seq."""
        if self._floor is not None:
            return self._last
        return await pool.fetchval("SELECT coalesce(max(seq), 0) FROM audit.log")
