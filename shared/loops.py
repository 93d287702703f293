"""The background loops of a service (outbox relay, schedulers, mail sender):
do what is due, then sleep until the next due time unless new work wakes the
loop early; when a round fails (broker or database away), wait longer each
time and try again, never dying."""

import asyncio
from abc import ABC, abstractmethod

import structlog

from shared.wakeup import Wakeup

__all__ = ["BackgroundLoop"]


class BackgroundLoop(ABC):
    def __init__(self, poll_seconds: float) -> None:
        self._poll = poll_seconds
        self._wake = Wakeup()

    def wake(self) -> None:
        self._wake.set()

    @abstractmethod
    async def tick(self) -> bool:
        """Do what is due now; True when more may be due at once (a full batch)."""

    async def pause(self) -> float:
        """Seconds to sleep when nothing more is due."""
        return self._poll

    async def run(self) -> None:
        failures = 0
        while True:
            try:
                more = await self.tick()
                failures = 0
            except Exception as exc:  # the loop's edge: broker or database away; try again later
                failures += 1
                structlog.get_logger().warning(
                    "background loop failed; will retry", loop=type(self).__name__, error=repr(exc), failures=failures
                )
                await asyncio.sleep(min(0.5 * 2**failures, 10.0))
                continue
            if not more:
                await self._wake.sleep(await self.pause())
