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

    def is_set(self) -> bool:
        """Whether :meth:`set` was called since the last sleep or :meth:`clear`."""
        return self._event.is_set()

    def clear(self) -> None:
        """Forget the calls so far: the work they announced is being looked at now."""
        self._event.clear()

    async def sleep(self, seconds: float) -> None:
        """Sleep ``seconds``, or less when :meth:`set` is called meanwhile (or was since the last sleep)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._event.wait(), timeout=seconds)
        self._event.clear()
