"""An in-memory :class:`AuditStore` for unit tests: the same chain as PostgresAuditStore."""

from collections.abc import AsyncIterator, Sequence
from typing import Any

from services.audit.chain import GENESIS, Row, link_hash
from services.audit.seal import Checkpoint
from shared.db import canonical_json

__all__ = ["FakeAuditStore"]


class FakeAuditStore:
    def __init__(self) -> None:
        self.entries: list[Row] = []
        self.head_row: tuple[int, str] = (0, GENESIS)
        self.sealed: list[Checkpoint] = []

    async def append(self, routing_key: str, event: dict[str, Any]) -> int:
        payload = canonical_json({"routing_key": routing_key, "event": event})
        seq, prev = self.head_row[0] + 1, self.head_row[1]
        digest = link_hash(prev, payload)
        self.entries.append((seq, payload, prev, digest))
        self.head_row = (seq, digest)
        return seq

    async def append_many(self, events: Sequence[tuple[str, dict[str, Any]]]) -> list[int]:
        return [await self.append(routing_key, event) for routing_key, event in events]

    async def rows(self) -> AsyncIterator[Row]:
        for row in self.entries:
            yield row

    async def batches(self, size: int = 2) -> AsyncIterator[Sequence[Row]]:
        for start in range(0, len(self.entries), size):
            yield self.entries[start : start + size]

    async def head(self) -> tuple[int, str]:
        return self.head_row

    async def add_checkpoint(self, checkpoint: Checkpoint) -> None:
        self.sealed.append(checkpoint)

    async def checkpoints(self) -> list[Checkpoint]:
        return sorted(self.sealed, key=lambda checkpoint: (checkpoint.seq, checkpoint.sealed_at))
