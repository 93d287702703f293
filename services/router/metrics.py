"""The router's gauges, read from its tables each time Prometheus scrapes: the
signature requests waiting for a decision, and those waiting so long that
someone should look (a signer who left, a mail that never arrived)."""

from collections.abc import Callable

import asyncpg

from shared.metrics import OPEN_REQUESTS, STUCK_REQUESTS, Scrape

__all__ = ["request_gauges"]


def request_gauges(pool: Callable[[], asyncpg.Pool], stuck_after: int, timezone: str) -> Scrape:
    """One query over the pending requests only (a partial index holds them), however many were ever decided. Stuck:
    more than ``stuck_after`` working days (Mon-Fri, local dates) since it was asked, as `paraaf documents` counts."""

    async def scrape() -> None:
        row = await pool().fetchrow(
            "SELECT count(*) AS open, count(*) FILTER (WHERE (SELECT count(*) FROM generate_series("
            " (created_at AT TIME ZONE $2)::date + 1, (now() AT TIME ZONE $2)::date, interval '1 day') AS day"
            " WHERE extract(isodow FROM day) < 6) > $1) AS stuck"
            " FROM router.requests WHERE status = 'pending'",
            stuck_after, timezone,
        )
        OPEN_REQUESTS.set(row["open"])
        STUCK_REQUESTS.set(row["stuck"])

    return scrape
