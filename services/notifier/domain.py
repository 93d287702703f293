"""The notifier's rules as pure functions: working days in the organisation's
time zone, when reminders are due, what due date a request shows. No I/O and
no clock: the moment to reason about is always passed in.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import NAMESPACE_URL, UUID, uuid5
from zoneinfo import ZoneInfo

__all__ = ["ReminderPolicy", "add_working_days", "operator_mail_id", "reminder_command_id", "retry_delay"]


def add_working_days(moment: datetime, days: int, timezone: str) -> datetime:
    """The same local time of day on the ``days``-th working day (Mon–Fri) after ``moment``'s day.

    Counting whole days on the wall clock keeps "3 working days" meaning the
    same across a daylight-saving change; public holidays are not known here.
    """
    zone = ZoneInfo(timezone)
    local = moment.astimezone(zone)
    day = local.date()
    counted = 0
    while counted < days:
        day += timedelta(days=1)
        if day.weekday() < 5:
            counted += 1
    return datetime.combine(day, local.time(), tzinfo=zone).astimezone(UTC)


@dataclass(frozen=True)
class ReminderPolicy:
    """Reminders ``after`` working days, then every ``every`` working days, at most ``maximum``."""

    after: int
    every: int
    maximum: int
    due_after: int
    timezone: str

    def first_reminder(self, requested_at: datetime) -> datetime | None:
        return add_working_days(requested_at, self.after, self.timezone) if self.maximum > 0 else None

    def next_reminder(self, issued_at: datetime, issued: int) -> datetime | None:
        """After the ``issued``-th reminder went out at ``issued_at``: when the next is due, or None."""
        if issued >= self.maximum:
            return None
        # Counted from when it went out, not when it was due: a notifier that was down
        # for a week sends one late reminder, not a burst of them.
        return add_working_days(issued_at, self.every, self.timezone)

    def due_date(self, requested_at: datetime, expires_at: datetime, named: datetime | None = None) -> datetime:
        """The date a request asks to be signed by: the one it names, else ``due_after``
        working days after it was made, never later than its link works."""
        if named is not None:
            return named
        return min(add_working_days(requested_at, self.due_after, self.timezone), expires_at)


def reminder_command_id(request_id: UUID, number: int) -> UUID:
    """The same id every time reminder ``number`` of a request is asked for, so the signer answers it once."""
    return uuid5(request_id, f"reminder-{number}")


def operator_mail_id(event_id: UUID, address: str) -> UUID:
    """One alert, one mail per operator: the id is derived, so a redelivered alert finds its mails."""
    return uuid5(NAMESPACE_URL, f"paraaf:{event_id}:{address.lower()}")


def retry_delay(attempts: int, first_seconds: float, max_seconds: float) -> timedelta:
    """How long to wait after ``attempts`` failed deliveries: ``first_seconds``, doubling, capped."""
    return timedelta(seconds=min(first_seconds * 2 ** max(attempts - 1, 0), max_seconds))
