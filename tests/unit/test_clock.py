"""The services' clock: the wall clock, a moved start, or an instant in a file that a demo moves forward."""

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import uuid4

import pytest

from shared import clock
from shared.clock import FileClock, clock_from, wall_clock
from shared.events import DocumentWithdrawn
from shared.settings import Settings

JULY = datetime(2025, 7, 10, 9, 0, tzinfo=UTC)


def test_without_settings_the_clock_is_the_wall_clock() -> None:
    assert clock_from(Settings()) is wall_clock


def test_a_moved_start_runs_on_from_that_instant() -> None:
    read = clock_from(Settings(clock_start=JULY))
    assert timedelta(0) <= read() - JULY < timedelta(seconds=5)


def test_a_file_clock_follows_every_rewrite_of_its_file(tmp_path: Path) -> None:
    path = tmp_path / "clock"
    FileClock.set(path, JULY)
    read = clock_from(Settings(clock_file=path))
    assert timedelta(0) <= read() - JULY < timedelta(seconds=5)
    FileClock.set(path, JULY + timedelta(days=40))
    assert timedelta(days=40) <= read() - JULY < timedelta(days=40, seconds=5)
    assert not [p for p in tmp_path.iterdir() if p.name != "clock"]  # the rename left no half-written copy behind


def test_a_file_clock_runs_on_from_when_the_file_was_written(tmp_path: Path) -> None:
    path = tmp_path / "clock"
    FileClock.set(path, JULY)
    an_hour_ago = datetime.now(UTC).timestamp() - 3600
    os.utime(path, (an_hour_ago, an_hour_ago))
    assert timedelta(hours=1) <= FileClock(path)() - JULY < timedelta(hours=1, seconds=5)


def test_a_file_clock_refuses_what_is_not_an_instant(tmp_path: Path) -> None:
    path = tmp_path / "clock"
    path.write_text("next tuesday\n")
    with pytest.raises(ValueError, match="next tuesday.*not an ISO 8601 instant"):
        FileClock(path)()
    with pytest.raises(FileNotFoundError):
        FileClock(tmp_path / "missing")()
    with pytest.raises(ValueError, match="time zone"):
        FileClock.set(path, datetime(2025, 7, 10))


def test_events_are_stamped_with_the_installed_clock() -> None:
    clock.install(lambda: JULY)
    try:
        assert DocumentWithdrawn(correlation_id=uuid4(), withdrawn_by="ops", reason="test").occurred_at == JULY
    finally:
        clock.install(wall_clock)
    assert datetime.now(UTC) - DocumentWithdrawn(correlation_id=uuid4(), withdrawn_by="ops", reason="test").occurred_at < timedelta(seconds=5)
