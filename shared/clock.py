"""The services' clock. Normally the wall clock; for tests and demos it can
start at another instant (PARAAF_CLOCK_START) and run forward from there, so
"the mayor is away in July" can be shown in November; or follow a file
(PARAAF_CLOCK_FILE) holding an instant, which whoever may write that file can
move forward while the services run: a demo or a test plays a year in
minutes, every service process agreeing on the time because they all read the
same file.

The services' clock stamps what the services decide and record: events'
``occurred_at``, the router's rows, link and session expiry. What must be
true time stays on the wall clock: a signature's signing time, an audit
seal, the audit log's ``recorded_at``.

A process installs its clock once (:func:`install`, done by
``shared.service.Service``); :func:`now` reads it, and events take their
``occurred_at`` from it.
"""

import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from shared.settings import Settings

__all__ = ["Clock", "FileClock", "clock_from", "install", "now", "wall_clock"]

Clock = Callable[[], datetime]


def wall_clock() -> datetime:
    return datetime.now(UTC)


def clock_from(settings: Settings) -> Clock:
    if settings.clock_file is not None:
        return FileClock(settings.clock_file)
    if settings.clock_start is None:
        return wall_clock
    start = settings.clock_start if settings.clock_start.tzinfo else settings.clock_start.replace(tzinfo=UTC)
    offset = start - datetime.now(UTC)
    return lambda: datetime.now(UTC) + offset


class FileClock:
    """The instant written in ``path``, plus the time since the file was written.

    Write it whole and atomically (a new file renamed over the old: :meth:`set`), so that a reader never sees
    half an instant. A missing or unreadable file is an error, not the wall clock: a demo whose clock silently
    fell back to today would record a year of nonsense."""

    def __init__(self, path: Path) -> None:
        self._path = Path(path)
        self._seen: tuple[int, int] | None = None
        self._offset = timedelta(0)

    def __call__(self) -> datetime:
        stat = os.stat(self._path)
        if (stat.st_ino, stat.st_mtime_ns) != self._seen:
            instant = _instant(self._path.read_text().strip(), self._path)
            written = datetime.fromtimestamp(stat.st_mtime_ns / 1e9, UTC)
            self._offset, self._seen = instant - written, (stat.st_ino, stat.st_mtime_ns)
        return datetime.now(UTC) + self._offset

    @staticmethod
    def set(path: Path, instant: datetime) -> None:
        """Move every clock reading ``path`` to ``instant`` (from now on)."""
        if instant.tzinfo is None:
            raise ValueError("the clock's instant needs a time zone")
        path = Path(path)
        fresh = path.with_name(f".{path.name}.{os.getpid()}")
        fresh.write_text(instant.isoformat() + "\n")
        os.replace(fresh, path)


def _instant(text: str, path: Path) -> datetime:
    try:
        instant = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{path}: `{text[:40]}` is not an ISO 8601 instant") from None
    return instant if instant.tzinfo else instant.replace(tzinfo=UTC)


_installed: Clock = wall_clock


def install(clock: Clock) -> None:
    """Make ``clock`` this process's services' clock (what :func:`now` and new events read)."""
    global _installed
    _installed = clock


def now() -> datetime:
    return _installed()
