"""The services' clock. Normally the wall clock; for tests and demos it can
start at another instant (PARAAF_CLOCK_START) and run forward from there, so
"the mayor is away in July" can be shown in November."""

from collections.abc import Callable
from datetime import UTC, datetime

from shared.settings import Settings

__all__ = ["Clock", "clock_from"]

Clock = Callable[[], datetime]


def clock_from(settings: Settings) -> Clock:
    if settings.clock_start is None:
        return lambda: datetime.now(UTC)
    start = settings.clock_start if settings.clock_start.tzinfo else settings.clock_start.replace(tzinfo=UTC)
    offset = start - datetime.now(UTC)
    return lambda: datetime.now(UTC) + offset
