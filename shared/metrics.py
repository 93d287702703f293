"""What a service tells Prometheus and its orchestrator about itself.

Each service is its own OS process, so each has one registry (prometheus-client's
default) and serves it on its own HTTP port at ``/metrics``; several processes of
one service (``paraaf run all --scale``) share that port, and ``paraaf_process``
says which one answered a scrape (sum their counters). Counters are kept where
the thing happens (the consumer edge, the outbox relay, the mail sender, the signing
page); gauges that are facts in the database (outbox lag, open requests) are read at
scrape time by :class:`Probes`, each query bounded by a timeout so a slow database
slows no scrape for long. Labels are few and bounded: a queue, a message type, an
exchange and routing key, an outcome.

:class:`Probes` is also what ``/readyz`` asks: named checks (database, broker,
migrations) that each answer yes or no, never why — the why is in the log.
"""

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import asyncpg
import structlog
from prometheus_client import Counter, Gauge, Histogram, Info

__all__ = [
    "HANDLER_SECONDS",
    "MAILS_FAILED",
    "MAILS_SENT",
    "MESSAGES_CONSUMED",
    "MESSAGES_PUBLISHED",
    "OPEN_REQUESTS",
    "OUTBOX_LAG",
    "OUTCOMES",
    "PROCESS",
    "SIGNATURES",
    "STUCK_REQUESTS",
    "Check",
    "Probes",
    "database_answers",
    "outbox_lag",
]

OUTCOMES = ("handled", "duplicate", "parked", "dead_lettered", "retried")
MESSAGES_CONSUMED = Counter(
    "paraaf_messages_consumed", "Messages taken from a queue, by message type and what became of them "
    "(outcome: handled, duplicate = already in the inbox, parked, dead_lettered = failed on its last try, retried)",
    ["queue", "message", "outcome"],
)
HANDLER_SECONDS = Histogram(
    "paraaf_handler_seconds", "Time from taking a message to acking, nacking or parking it",
    ["queue", "message"], buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
MESSAGES_PUBLISHED = Counter(
    "paraaf_messages_published", "Outbox rows the broker confirmed", ["exchange", "routing_key"]
)
PROCESS = Info("paraaf_process", "Which process of its service answered this scrape: its replica number and pid")
OUTBOX_LAG = Gauge("paraaf_outbox_lag_seconds", "Age of the oldest outbox row not yet published (0 when none waits)")
MAILS_SENT = Counter("paraaf_mails_sent", "Mails the SMTP server accepted")
MAILS_FAILED = Counter(
    "paraaf_mails_failed", "Mail deliveries that failed (outcome: retried later, or given_up for good)", ["outcome"]
)
SIGNATURES = Counter("paraaf_signatures", "Requests decided on the signing page (action: sign or approve)", ["action"])
OPEN_REQUESTS = Gauge("paraaf_open_requests", "Signature requests pending a decision")
STUCK_REQUESTS = Gauge("paraaf_stuck_requests", "Signature requests pending for more than PARAAF_STUCK_AFTER working days")

Check = Callable[[], Awaitable[bool]]
Scrape = Callable[[], Awaitable[None]]
PROBE_SECONDS = 2.0  # a check or scrape query that takes longer counts as failed: an orchestrator waits for no one


@dataclass
class Probes:
    """What ``/readyz`` checks (by name) and what ``/metrics`` reads from the database before it answers."""

    checks: dict[str, Check]
    scrapes: list[Scrape] = field(default_factory=list)

    async def readiness(self) -> dict[str, bool]:
        names = list(self.checks)
        results = await asyncio.gather(*(_passes(name, self.checks[name]) for name in names))
        return dict(zip(names, results, strict=True))

    async def refresh(self) -> None:
        await asyncio.gather(*(_scraped(scrape) for scrape in self.scrapes))


async def _passes(name: str, check: Check) -> bool:
    try:
        return await asyncio.wait_for(check(), timeout=PROBE_SECONDS)
    except Exception as exc:  # the probe's edge: any failure is a no, and the log says why
        structlog.get_logger().warning("readiness check failed", check=name, error=repr(exc))
        return False


async def _scraped(scrape: Scrape) -> None:
    try:
        await asyncio.wait_for(scrape(), timeout=PROBE_SECONDS)
    except Exception as exc:  # a gauge keeps its last value; /readyz tells whether the database is away
        structlog.get_logger().warning("metrics scrape query failed", scrape=getattr(scrape, "__qualname__", "?"), error=repr(exc))


def database_answers(pool: Callable[[], asyncpg.Pool]) -> Check:
    async def check() -> bool:
        return await pool().fetchval("SELECT 1") == 1

    return check


def outbox_lag(pool: Callable[[], asyncpg.Pool], schema: str) -> Scrape:
    """Reads the age of the oldest outbox row by its primary key: one index step however long the outbox is."""

    async def scrape() -> None:
        age = await pool().fetchval(
            f"SELECT extract(epoch FROM now() - created_at)::float8 FROM {schema}.outbox ORDER BY id LIMIT 1"
        )
        OUTBOX_LAG.set(max(age or 0.0, 0.0))

    return scrape


def _zero_series() -> None:
    """Series with their usual labels from the start, at 0: a rate() or an alert sees "none yet", not "no data"."""
    for outcome in ("retried", "given_up"):
        MAILS_FAILED.labels(outcome)
    for action in ("sign", "approve"):
        SIGNATURES.labels(action)


_zero_series()
