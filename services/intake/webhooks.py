"""Outcomes by webhook, for sources that cannot consume AMQP (README "Webhooks").

An outcome for a source with a webhook is written to ``intake.webhook_deliveries`` in the outcome's own
transaction; :class:`WebhookSender`, a loop apart from message handling, POSTs it to the source's URL, signed
(``Paraaf-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">``) and named (``Paraaf-Delivery: <uuid>``,
the outcome's id, for the receiver to drop a second copy). A receiver that does not answer 2xx is tried again,
each wait twice the last with jitter, for at most PARAAF_WEBHOOK_RETRY_HOURS; then the delivery is given up
(``webhook.abandoned``: an incident). The flow never waits for a receiver.
"""

import asyncio
import hashlib
import hmac
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg
import httpx
import structlog

from services.intake.sources import webhook_url_problem
from shared.events import WebhookAbandoned, WebhookDelivered
from shared.loops import BackgroundLoop
from shared.messaging import Outbox

__all__ = ["DELIVERY_HEADER", "EVENT_HEADER", "PLAIN_HTTP_REFUSED", "SIGNATURE_HEADER", "Backoff", "WebhookSender", "sign"]

SIGNATURE_HEADER = "Paraaf-Signature"
DELIVERY_HEADER = "Paraaf-Delivery"
EVENT_HEADER = "Paraaf-Event"
PLAIN_HTTP_REFUSED = (
    "not sent: the webhook is plain http and an outcome carries the signed PDF; register an https URL"
    " (`paraaf sources add SOURCE --webhook https://...`) or set PARAAF_WEBHOOK_ALLOW_HTTP=true"
)


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The ``Paraaf-Signature`` value: the time it was signed and the HMAC-SHA256 of ``"<t>." + body``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


@dataclass(frozen=True)
class Backoff:
    """When to try a failed delivery again: ``first`` seconds after the first failure, twice as long after each
    next one (at most ``longest``), each wait drawn between half and all of it; never past ``give_up_after``."""

    first: float
    longest: float
    give_up_after: timedelta

    def next_attempt(self, attempts: int, created_at: datetime, now: datetime, jitter: float) -> datetime | None:
        """After ``attempts`` failed tries: when to try again, or None to give up. ``jitter`` is in [0, 1)."""
        deadline = created_at + self.give_up_after
        if now >= deadline:
            return None
        wait = min(self.longest, self.first * 2 ** max(attempts - 1, 0)) * (0.5 + jitter / 2)
        return min(now + timedelta(seconds=wait), deadline)


_CLAIM = """
UPDATE intake.webhook_deliveries d SET next_attempt_at = now() + make_interval(secs => $2)
  FROM intake.webhooks w
 WHERE w.source = d.source AND d.delivery_id IN (
       SELECT delivery_id FROM intake.webhook_deliveries WHERE state = 'pending' AND next_attempt_at <= now()
        ORDER BY created_at LIMIT $1 FOR UPDATE SKIP LOCKED)
RETURNING d.delivery_id, d.source, d.event, d.document_id, d.org, d.body, d.attempts, d.created_at, d.redelivered,
          w.url, w.secret, now() AS now
"""


class WebhookSender(BackgroundLoop):
    """Delivers what is due, several receivers at once; a claimed row is leased, so a crash mid-delivery only
    means that delivery is tried again (the receiver drops the copy by its ``Paraaf-Delivery``)."""

    def __init__(
        self, pool: Callable[[], asyncpg.Pool], outbox: Outbox, backoff: Backoff, *, timeout: float, poll_seconds: float,
        after_commit: Callable[[], None] = lambda: None, batch: int = 20, random_: Callable[[], float] = random.random,
        allow_http: bool = False,
    ) -> None:
        super().__init__(poll_seconds)
        self._pool, self._outbox, self._backoff = pool, outbox, backoff
        self._timeout, self._batch, self._random, self._after_commit = timeout, batch, random_, after_commit
        self._allow_http = allow_http

    async def tick(self) -> bool:
        rows = await self._pool().fetch(_CLAIM, self._batch, self._timeout * 2 + 5)
        if rows:
            async with httpx.AsyncClient(timeout=self._timeout, follow_redirects=False) as client:
                await asyncio.gather(*(self._deliver(client, row) for row in rows))
        return len(rows) == self._batch

    async def _deliver(self, client: httpx.AsyncClient, row: asyncpg.Record) -> None:
        error = await self._post(client, row)
        async with self._pool().acquire() as conn, conn.transaction():
            if error is None:
                await self._delivered(conn, row)
            else:
                await self._failed(conn, row, error)
        self._after_commit()

    async def _post(self, client: httpx.AsyncClient, row: asyncpg.Record) -> str | None:
        """None when the receiver took it (2xx), else what went wrong."""
        if webhook_url_problem(row["url"], allow_http=self._allow_http):  # stored before `sources add` refused it
            return PLAIN_HTTP_REFUSED
        body = bytes(row["body"])
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(row["secret"], int(row["now"].timestamp()), body),
            DELIVERY_HEADER: str(row["delivery_id"]),
            EVENT_HEADER: row["event"],
        }
        try:
            response = await client.post(row["url"], content=body, headers=headers)
        except httpx.HTTPError as exc:  # the receiver's edge: down, refusing, too slow
            return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        return None if 200 <= response.status_code < 300 else f"HTTP {response.status_code}"

    async def _delivered(self, conn: asyncpg.Connection, row: asyncpg.Record) -> None:
        await conn.execute(
            "UPDATE intake.webhook_deliveries SET state = 'delivered', delivered_at = now(), attempts = attempts + 1,"
            " last_error = NULL WHERE delivery_id = $1",
            row["delivery_id"],
        )
        if row["redelivered"]:  # it was an incident: its delivery closes it
            event = WebhookDelivered(
                correlation_id=row["document_id"] or row["delivery_id"], org=row["org"], delivery_id=row["delivery_id"],
                source=row["source"], attempts=row["attempts"] + 1,
            )
            await self._outbox.add(conn, event)

    async def _failed(self, conn: asyncpg.Connection, row: asyncpg.Record, error: str) -> None:
        attempts = row["attempts"] + 1
        retry_at = self._backoff.next_attempt(attempts, row["created_at"], row["now"], self._random())
        await conn.execute(
            "UPDATE intake.webhook_deliveries SET attempts = $2, last_error = $3, next_attempt_at = coalesce($4, now()),"
            " state = CASE WHEN $4::timestamptz IS NULL THEN 'abandoned' ELSE 'pending' END WHERE delivery_id = $1",
            row["delivery_id"], attempts, error, retry_at,
        )
        log = structlog.get_logger().bind(source=row["source"], delivery_id=str(row["delivery_id"]), attempts=attempts, error=error)
        if retry_at is not None:
            log.info("webhook delivery failed; will retry", retry_at=retry_at.isoformat())
            return
        log.warning("webhook delivery given up")
        await self._outbox.add(conn, WebhookAbandoned(
            correlation_id=row["document_id"] or row["delivery_id"], org=row["org"], delivery_id=row["delivery_id"],
            source=row["source"], url=row["url"], attempts=attempts, reason=error,
        ))
