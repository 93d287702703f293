"""The router's gauges, read from its tables each time Prometheus scrapes: the
signature requests waiting for a decision, and those waiting so long that
someone should look (a signer who left, a mail that never arrived)."""

from collections.abc import Callable
from datetime import timedelta

import asyncpg

from shared.metrics import OPEN_REQUESTS, STUCK_REQUESTS, Scrape

__all__ = ["request_gauges"]


def request_gauges(pool: Callable[[], asyncpg.Pool], stuck_after: timedelta) -> Scrape:
    """One query over the pending requests only (a partial index holds them), however many were ever decided."""

    async def scrape() -> None:
        row = await pool().fetchrow(
            "SELECT count(*) AS open, count(*) FILTER (WHERE created_at < now() - $1::interval) AS stuck"
            " FROM router.requests WHERE status = 'pending'",
            stuck_after,
        )
        OPEN_REQUESTS.set(row["open"])
        STUCK_REQUESTS.set(row["stuck"])

    return scrape
