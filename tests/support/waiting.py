"""Waiting as a person watching would: look again until it is there, or say what never came."""

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from tests.support.system import System

__all__ = ["cli", "eventually"]

T = TypeVar("T")


async def eventually(probe: Callable[[], Awaitable[T | None]], what: str, timeout: float = 45.0, every: float = 0.3) -> T:
    """``probe()`` until it gives something (not None, not False); fails naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while (found := await probe()) is None or found is False:
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        await asyncio.sleep(every)
    return found


async def cli(system: System, *args: str, check: bool = True) -> Any:
    """`paraaf ARGS` in a thread, so the SMTP server (and any TSA) in this process keep answering meanwhile."""
    return await asyncio.to_thread(system.cli, *args, check=check)
