"""The audit log's tables behind one interface, :class:`AuditStore`: appending to
the chain and reading it back. :class:`PostgresAuditStore` works in the caller's
transaction; tests use an in-memory fake of the same interface."""

from collections.abc import AsyncIterator
from typing import Any, Protocol

import asyncpg

from services.audit.chain import Row, link_hash
from shared.db import canonical_json

__all__ = ["AuditStore", "PostgresAuditStore"]


class AuditStore(Protocol):
    async def append(self, routing_key: str, event: dict[str, Any]) -> int: ...
    def rows(self) -> AsyncIterator[Row]: ...
    async def head(self) -> tuple[int, str]: ...


class PostgresAuditStore:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def append(self, routing_key: str, event: dict[str, Any]) -> int:
        """Chain ``event`` onto the log; returns its sequence number."""
        payload = canonical_json({"routing_key": routing_key, "event": event})
        head = await self._conn.fetchrow("SELECT seq, hash FROM audit.head WHERE id = 1 FOR UPDATE")
        seq, digest = head["seq"] + 1, link_hash(head["hash"], payload)
        await self._conn.execute(
            "INSERT INTO audit.log (seq, event_id, routing_key, org, document_id, occurred_at, payload, prev_hash, hash)"
            " VALUES ($1, $2, $3, $4, $5, $6::text::timestamptz, $7, $8, $9)",
            seq, event["event_id"], routing_key, event.get("org", "default"), event.get("correlation_id"),
            event["occurred_at"], payload, head["hash"], digest,
        )
        await self._conn.execute("UPDATE audit.head SET seq = $1, hash = $2 WHERE id = 1", seq, digest)
        return seq

    async def rows(self, batch: int = 5000) -> AsyncIterator[Row]:
        """Every entry in order (call inside a transaction: the cursor needs one)."""
        async for row in self._conn.cursor("SELECT seq, payload, prev_hash, hash FROM audit.log ORDER BY seq", prefetch=batch):
            yield row["seq"], row["payload"], row["prev_hash"], row["hash"]

    async def head(self) -> tuple[int, str]:
        row = await self._conn.fetchrow("SELECT seq, hash FROM audit.head WHERE id = 1")
        return row["seq"], row["hash"]
