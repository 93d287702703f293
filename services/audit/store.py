"""The audit log's tables: appending to the chain and reading it back."""

from collections.abc import AsyncIterator
from typing import Any

import asyncpg

from services.audit.chain import Break, link_hash, verify_chain

__all__ = ["Break", "append", "verify"]
from shared.db import canonical_json


async def append(conn: asyncpg.Connection, routing_key: str, event: dict[str, Any]) -> int:
    """Chain ``event`` onto the log; returns its sequence number."""
    payload = canonical_json({"routing_key": routing_key, "event": event})
    head = await conn.fetchrow("SELECT seq, hash FROM audit.head WHERE id = 1 FOR UPDATE")
    seq, digest = head["seq"] + 1, link_hash(head["hash"], payload)
    await conn.execute(
        "INSERT INTO audit.log (seq, event_id, routing_key, org, document_id, occurred_at, payload, prev_hash, hash)"
        " VALUES ($1, $2, $3, $4, $5, $6::text::timestamptz, $7, $8, $9)",
        seq,
        event["event_id"],
        routing_key,
        event.get("org", "default"),
        event.get("correlation_id"),
        event["occurred_at"],
        payload,
        head["hash"],
        digest,
    )
    await conn.execute("UPDATE audit.head SET seq = $1, hash = $2 WHERE id = 1", seq, digest)
    return seq


async def _rows(conn: asyncpg.Connection, batch: int = 5000) -> AsyncIterator[tuple[int, str, str, str]]:
    async for row in conn.cursor("SELECT seq, payload, prev_hash, hash FROM audit.log ORDER BY seq", prefetch=batch):
        yield row["seq"], row["payload"], row["prev_hash"], row["hash"]


async def verify(conn: asyncpg.Connection) -> tuple[int, Break | None]:
    """Walk the whole chain; (entries checked, first break or None). Also checks the head."""
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        rows = [r async for r in _rows(conn)]
        head = await conn.fetchrow("SELECT seq, hash FROM audit.head WHERE id = 1")
    problem = verify_chain(rows)
    if problem is None and rows and (head["seq"], head["hash"]) != (rows[-1][0], rows[-1][3]):
        problem = Break(head["seq"], "the chain's head does not match its last entry (entries were removed)")
    if problem is None and [r[0] for r in rows] != list(range(1, len(rows) + 1)):
        problem = Break(len(rows), "sequence numbers have gaps (entries were removed)")
    return len(rows), problem
