"""The notifier's pure rules: working days in Brussels, the reminder schedule, due dates, retry delays."""

from datetime import UTC, datetime, timedelta
from uuid import uuid4
from zoneinfo import ZoneInfo

import pytest

from services.notifier.domain import ReminderPolicy, add_working_days, reminder_command_id, retry_delay

BRUSSELS = ZoneInfo("Europe/Brussels")
POLICY = ReminderPolicy(after=3, every=2, maximum=3, due_after=5, timezone="Europe/Brussels")


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=BRUSSELS)


@pytest.mark.parametrize(
    ("start", "days", "expected"),
    [
        (local(2026, 3, 2, 10, 0), 3, local(2026, 3, 5, 10, 0)),  # Monday -> Thursday
        (local(2026, 3, 6, 15, 0), 3, local(2026, 3, 11, 15, 0)),  # Friday -> Wednesday, the weekend skipped
        (local(2026, 3, 7, 11, 0), 1, local(2026, 3, 9, 11, 0)),  # Saturday -> Monday
        (local(2026, 3, 8, 23, 30), 2, local(2026, 3, 10, 23, 30)),  # Sunday night -> Tuesday night
    ],
)
def test_working_days_skip_the_weekend_and_keep_the_local_time(start: datetime, days: int, expected: datetime) -> None:
    """Adding working days counts Monday to Friday only and lands at the same local time of day."""
    assert add_working_days(start, days, "Europe/Brussels") == expected


def test_working_days_keep_the_wall_clock_across_the_change_to_summer_time() -> None:
    """A reminder asked on Friday 10:00 in winter time comes on Wednesday 10:00 in summer time, not 11:00."""
    due = add_working_days(local(2026, 3, 27, 10, 0), 3, "Europe/Brussels")
    assert due.astimezone(BRUSSELS) == local(2026, 4, 1, 10, 0)
    assert due == datetime(2026, 4, 1, 8, 0, tzinfo=UTC)


def test_the_first_reminder_comes_after_the_configured_working_days() -> None:
    """A request made on Monday morning is first reminded on Thursday morning."""
    assert POLICY.first_reminder(local(2026, 3, 2, 9, 15)) == local(2026, 3, 5, 9, 15)


def test_reminders_repeat_every_interval_until_the_maximum() -> None:
    """After reminders 1 and 2 a next one is planned (2 working days on); after the 3rd, none."""
    sent_at = local(2026, 3, 5, 9, 15)  # a Thursday
    assert POLICY.next_reminder(sent_at, 1) == local(2026, 3, 9, 9, 15)
    assert POLICY.next_reminder(sent_at, 2) == local(2026, 3, 9, 9, 15)
    assert POLICY.next_reminder(sent_at, 3) is None


def test_no_reminders_when_the_maximum_is_zero() -> None:
    """PARAAF_REMINDER_MAX=0 turns reminders off."""
    off = ReminderPolicy(after=3, every=2, maximum=0, due_after=5, timezone="Europe/Brussels")
    assert off.first_reminder(local(2026, 3, 2, 9, 0)) is None


def test_the_due_date_defaults_to_working_days_after_the_request_but_not_past_the_link() -> None:
    """Without a named date a request is due 5 working days on, or when its link expires if that is sooner."""
    requested = local(2026, 3, 2, 9, 0)
    far = requested + timedelta(days=21)
    assert POLICY.due_date(requested, far) == local(2026, 3, 9, 9, 0)
    soon = requested + timedelta(days=2)
    assert POLICY.due_date(requested, soon) == soon


def test_a_due_date_the_request_names_wins() -> None:
    """A due date sent with the request is shown as is."""
    named = local(2026, 3, 20, 17, 0)
    assert POLICY.due_date(local(2026, 3, 2, 9, 0), named + timedelta(days=30), named) == named


def test_each_reminder_of_a_request_has_one_stable_command_id() -> None:
    """Asking for reminder 2 twice yields the same id (the signer answers once); reminders 1 and 2 differ."""
    request = uuid4()
    assert reminder_command_id(request, 2) == reminder_command_id(request, 2)
    assert reminder_command_id(request, 1) != reminder_command_id(request, 2)
    assert reminder_command_id(uuid4(), 1) != reminder_command_id(request, 1)


def test_retry_delays_double_up_to_the_cap() -> None:
    """A mail is retried after 60 s, 120 s, 240 s ... never more than an hour apart."""
    delays = [retry_delay(n, 60, 3600).total_seconds() for n in range(1, 9)]
    assert delays == [60, 120, 240, 480, 960, 1920, 3600, 3600]
