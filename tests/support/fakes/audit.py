"""An in-memory :class:`AuditStore` for unit tests: the same chain as PostgresAuditStore."""

from collections.abc import AsyncIterator, Sequence
from typing import Any

from services.audit.chain import GENESIS, Row, links
from services.audit.seal import Checkpoint
from shared.db import canonical_json

__all__ = ["FakeAuditStore"]


class FakeAuditStore:
    def __init__(self) -> None:
        self.entries: list[Row] = []
        self.head_row: tuple[int, str] = (0, GENESIS)
        self.sealed: list[Checkpoint] = []

    async def append(self, routing_key: str, event: dict[str, Any]) -> int:
        [seq] = await self.append_many([(routing_key, event)])
        return seq

    async def append_many(self, events: Sequence[tuple[str, dict[str, Any]]]) -> list[int]:
        """As the real store: the payloads chained after the head by the product's own ``links``."""
        payloads = [canonical_json({"routing_key": routing_key, "event": event}) for routing_key, event in events]
        made = links(self.head_row, payloads)
        self.entries += [(link.seq, payload, link.prev_hash, link.hash) for link, payload in zip(made, payloads, strict=True)]
        if made:
            self.head_row = (made[-1].seq, made[-1].hash)
        return [link.seq for link in made]

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
