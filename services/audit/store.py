"""The audit log's tables behind one interface, :class:`AuditStore`: appending to
the chain (many events at once: the rows go in and the head moves on in one
statement, from the head this process last left when no other writer moved it) and reading it back (in batches, through a server-side cursor, so
no reader ever holds the whole log), and its sealed checkpoints. :class:`PostgresAuditStore` works in the caller's
transaction; tests use an in-memory fake of the same interface."""

from collections.abc import AsyncIterator, Sequence
from typing import Any, Protocol

import asyncpg

from services.audit.chain import Row, links
from services.audit.seal import Checkpoint
from shared.db import canonical_json

__all__ = ["AuditStore", "KnownHead", "PostgresAuditStore"]


class AuditStore(Protocol):
    async def append(self, routing_key: str, event: dict[str, Any]) -> int: ...
    async def append_many(self, events: Sequence[tuple[str, dict[str, Any]]]) -> list[int]: ...
    def rows(self) -> AsyncIterator[Row]: ...
    def batches(self) -> AsyncIterator[Sequence[Row]]: ...
    async def head(self) -> tuple[int, str]: ...
    async def add_checkpoint(self, checkpoint: Checkpoint) -> None: ...
    async def checkpoints(self) -> list[Checkpoint]: ...


class KnownHead:
    """The chain's head as this process last moved it: the next append moves it on from there in the same
    statement that adds the entries, unless another writer moved it meanwhile (then the head is read, locked,
    and the entries chained again). A guess checked in the database, never trusted blindly."""

    def __init__(self) -> None:
        self.seq_hash: tuple[int, str] | None = None


# The entries and the head's move in one statement; nothing is written unless the head still is $10/$11 (its
# row lock taken by the UPDATE orders writers). occurred_at is cast from text as a single append always did.
_APPEND = (
    "WITH moved AS (UPDATE audit.head SET seq = $12, hash = $13 WHERE id = 1 AND seq = $10 AND hash = $11 RETURNING 1),"
    " added AS (INSERT INTO audit.log (seq, event_id, routing_key, org, document_id, occurred_at, payload, prev_hash, hash)"
    " SELECT seq, event_id, routing_key, org, document_id, occurred_at::timestamptz, payload, prev_hash, hash"
    " FROM unnest($1::bigint[], $2::uuid[], $3::text[], $4::text[], $5::uuid[], $6::text[], $7::text[],"
    " $8::text[], $9::text[]) AS batch(seq, event_id, routing_key, org, document_id, occurred_at, payload,"
    " prev_hash, hash) WHERE EXISTS (SELECT FROM moved))"
    " SELECT count(*) > 0 FROM moved"
)


class PostgresAuditStore:
    def __init__(self, conn: asyncpg.Connection, known: KnownHead | None = None) -> None:
        self._conn = conn
        self._known = known or KnownHead()

    async def append(self, routing_key: str, event: dict[str, Any]) -> int:
        """Chain ``event`` onto the log; returns its sequence number."""
        [seq] = await self.append_many([(routing_key, event)])
        return seq

    async def append_many(self, events: Sequence[tuple[str, dict[str, Any]]]) -> list[int]:
        """Chain ``(routing_key, event)`` pairs onto the log in this order; returns their sequence numbers."""
        if not events:
            return []
        payloads = [canonical_json({"routing_key": routing_key, "event": event}) for routing_key, event in events]
        head = self._known.seq_hash
        if head is None or not await self._chain(events, payloads, head):
            head = tuple(await self._conn.fetchrow("SELECT seq, hash FROM audit.head WHERE id = 1 FOR UPDATE"))
            if not await self._chain(events, payloads, head):
                raise RuntimeError("the audit head moved while it was locked")
        seq = head[0]
        return list(range(seq + 1, seq + 1 + len(events)))

    async def _chain(self, events: Sequence[tuple[str, dict[str, Any]]], payloads: list[str], head: tuple[int, str]) -> bool:
        """Add the entries after ``head`` and move the head past them, if ``head`` still is the head."""
        made = links(head, payloads)
        moved = await self._conn.fetchval(
            _APPEND,
            [link.seq for link in made],
            [event["event_id"] for _, event in events],
            [routing_key for routing_key, _ in events],
            [event.get("org", "default") for _, event in events],
            [event.get("correlation_id") for _, event in events],
            [event["occurred_at"] for _, event in events],
            payloads,
            [link.prev_hash for link in made],
            [link.hash for link in made],
            *head,
            made[-1].seq,
            made[-1].hash,
        )
        self._known.seq_hash = (made[-1].seq, made[-1].hash) if moved else None
        return bool(moved)

    async def rows(self, batch: int = 5000) -> AsyncIterator[Row]:
        """Every entry in order (call inside a transaction: the cursor needs one)."""
        async for row in self._conn.cursor("SELECT seq, payload, prev_hash, hash FROM audit.log ORDER BY seq", prefetch=batch):
            yield row["seq"], row["payload"], row["prev_hash"], row["hash"]

    async def batches(self, size: int = 10_000) -> AsyncIterator[Sequence[Row]]:
        """Every entry in order, ``size`` at a time (call inside a transaction: the cursor needs one)."""
        cursor = await self._conn.cursor("SELECT seq, payload, prev_hash, hash FROM audit.log ORDER BY seq")
        while batch := await cursor.fetch(size):
            yield batch  # records unpack as (seq, payload, prev_hash, hash)

    async def head(self) -> tuple[int, str]:
        row = await self._conn.fetchrow("SELECT seq, hash FROM audit.head WHERE id = 1")
        return row["seq"], row["hash"]

    async def add_checkpoint(self, checkpoint: Checkpoint) -> None:
        await self._conn.execute(
            "INSERT INTO audit.checkpoints (seq, head_hash, sealed_at, public_key, signature, timestamp_token, certificate)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7)",
            checkpoint.seq,
            checkpoint.head_hash,
            checkpoint.sealed_at,
            checkpoint.public_key,
            checkpoint.signature,
            checkpoint.timestamp_token,
            checkpoint.certificate,
        )

    async def checkpoints(self) -> list[Checkpoint]:
        """All of them, oldest first: one an hour is under 9,000 a year, small enough to hold."""
        rows = await self._conn.fetch(
            "SELECT seq, head_hash, sealed_at, public_key, signature, timestamp_token, certificate FROM audit.checkpoints"
            " ORDER BY seq, sealed_at"
        )
        return [Checkpoint(**dict(row)) for row in rows]
