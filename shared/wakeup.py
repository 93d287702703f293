"""A sleep that ends early: background loops (outbox relay, schedulers, mail
sender) sleep until their next due time unless new work wakes them."""

import asyncio
import contextlib

__all__ = ["Wakeup"]


class Wakeup:
    def __init__(self) -> None:
        self._event = asyncio.Event()

    def set(self) -> None:
        self._event.set()

    async def sleep(self, seconds: float) -> None:
        """Sleep ``seconds``, or less when :meth:`set` is called meanwhile (or was since the last sleep)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._event.wait(), timeout=seconds)
        self._event.clear()
