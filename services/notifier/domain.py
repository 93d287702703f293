"""The notifier's rules as pure functions: working days in the organisation's
time zone, when reminders are due, what due date a request shows, when no
mail goes out, how often a failed mail is tried again and which SMTP answers
are final. No I/O and no clock: the moment to reason about is always passed in.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import NAMESPACE_URL, UUID, uuid5
from zoneinfo import ZoneInfo

from shared.events import PersonRef

__all__ = [
    "DueDate",
    "GiveUp",
    "Move",
    "Notice",
    "ReminderDue",
    "ReminderPolicy",
    "Retry",
    "RetryBudget",
    "Schedule",
    "absence_notice",
    "add_working_days",
    "final_refusal",
    "has_address",
    "operator_mail_id",
    "reminder_command_id",
    "retry_delay",
    "why_no_link_mail",
]


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


# A signing request, its due date and its reminders.


@dataclass(frozen=True)
class Schedule:
    """A signing request as the notifier follows it. A request closed before its first
    mail was asked for still has one ('closed'), so a late command cannot reopen it."""

    request_id: UUID
    org: str
    document_id: UUID
    requested_at: datetime | None = None
    due_at: datetime | None = None  # the date the mails ask it to be signed by
    next_at: datetime | None = None  # when the next reminder is due; None when none is
    sent: int = 0  # reminders asked for so far
    status: str = "open"  # open | exhausted (no reminders left) | closed
    closed_by: str | None = None  # the routing key of what closed it, e.g. signature.signed

    @property
    def closed(self) -> bool:
        return self.status == "closed"


@dataclass(frozen=True)
class DueDate:
    at: datetime
    overdue: bool
    timed: bool = False  # shown with its time of day, not just its day


@dataclass(frozen=True)
class ReminderDue:
    """Reminder ``number`` of a request, asked of the signer with ``command_id``; the one after it at ``next_at``."""

    command_id: UUID
    number: int
    next_at: datetime | None


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

    def opening(self, request_id: UUID, org: str, document_id: UUID, now: datetime, expires_at: datetime, named: datetime | None) -> Schedule:
        """The schedule of a request made ``now``: its due date and its first reminder (none: 'exhausted')."""
        next_at = self.first_reminder(now)
        due_at = self.due_date(now, expires_at, named)
        return Schedule(request_id, org, document_id, now, due_at, next_at, status="open" if next_at else "exhausted")

    def shown_due(self, schedule: Schedule | None, now: datetime, expires_at: datetime, named: datetime | None) -> DueDate:
        """The due date a link mail shows: the request's own, kept since it was made; overdue once it has passed.
        With its time when the submission named it, or when it is less than a day after the request: "by today"
        would not tell the signer enough."""
        at = schedule.due_at if schedule and schedule.due_at else self.due_date(now, expires_at, named)
        requested_at = schedule.requested_at if schedule else now
        return DueDate(at, overdue=at <= now, timed=named is not None or at - requested_at < timedelta(days=1))

    def reminder(self, schedule: Schedule, now: datetime) -> ReminderDue:
        """The reminder that fell due for ``schedule``, asked for ``now``."""
        number = schedule.sent + 1
        return ReminderDue(reminder_command_id(schedule.request_id, number), number, self.next_reminder(now, number))


def reminder_command_id(request_id: UUID, number: int) -> UUID:
    """The same id every time reminder ``number`` of a request is asked for, so the signer answers it once."""
    return uuid5(request_id, f"reminder-{number}")


# When no mail goes out.


def has_address(person: PersonRef | None) -> bool:
    """Nobody without a mail address is mailed; the mail is not queued at all."""
    return person is not None and bool(person.email)


def why_no_link_mail(address: str | None, document_ended: bool, schedule: Schedule | None = None) -> str | None:
    """Why a signing-link mail does not go out, or None when it does: nobody to send it to,
    or a link that would not work (the document ended, or the request was signed, moved
    or cancelled before this mail was asked for)."""
    if not address:
        return "the signer has no address"
    if document_ended:
        return "the document ended"
    if schedule is not None and schedule.closed:
        return "the request is closed"
    return None


def operator_mail_id(event_id: UUID, address: str) -> UUID:
    """One alert, one mail per operator: the id is derived, so a redelivered alert finds its mails."""
    return uuid5(NAMESPACE_URL, f"paraaf:{event_id}:{address.lower()}")


# Requests moved away from an absent person, told in one notice per absence.


@dataclass(frozen=True)
class Move:
    """A request moved away from ``from_person`` (absent) to ``to_person``; ``event_id`` is the signature.reassigned event's."""

    event_id: UUID
    org: str
    document_id: UUID
    from_person: PersonRef
    to_person: PersonRef
    title: str
    reason: str
    moved_at: datetime

    @property
    def person_id(self) -> str:
        return self.from_person.id


@dataclass(frozen=True)
class Notice:
    """One mail telling an absent person every request moved away from them."""

    mail_id: UUID
    person: PersonRef
    document_id: UUID  # the first move's document
    documents: tuple[UUID, ...]  # every document it concerns, each once
    moves: tuple[Move, ...]


def absence_notice(moves: Sequence[Move]) -> Notice:
    """The notice listing ``moves`` (oldest first), keyed by the first: telling it again finds the same mail."""
    first = moves[0]
    documents = tuple(dict.fromkeys(m.document_id for m in moves))
    return Notice(first.event_id, first.from_person, first.document_id, documents, tuple(moves))


# Delivery: the retry budget and which SMTP answers are final.


@dataclass(frozen=True)
class Retry:
    delay: timedelta


@dataclass(frozen=True)
class GiveUp:
    reason: str


def retry_delay(attempts: int, first_seconds: float, max_seconds: float) -> timedelta:
    """How long to wait after ``attempts`` failed deliveries: ``first_seconds``, doubling, capped."""
    return timedelta(seconds=min(first_seconds * 2 ** max(attempts - 1, 0), max_seconds))


@dataclass(frozen=True)
class RetryBudget:
    """A mail is tried at most ``max_attempts`` times, ``first_seconds`` apart at first, doubling up to ``max_seconds``."""

    max_attempts: int
    first_seconds: float
    max_seconds: float

    def after_failure(self, attempts: int, error: str) -> Retry | GiveUp:
        """What follows the ``attempts``-th failed delivery of a mail, which failed with ``error``."""
        if attempts >= self.max_attempts:
            return GiveUp(f"gave up after {attempts} attempts; last error {error}")
        return Retry(retry_delay(attempts, self.first_seconds, self.max_seconds))


def final_refusal(refused: str, codes: Sequence[int]) -> bool:
    """Whether an SMTP server's refusal is final: a 5xx refusal of the recipients (every one) or
    of the message. Anything else may pass later — 4xx answers, and even a 5xx for our login or
    our sender address, which is our configuration and an operator can fix."""
    return refused in ("recipient", "message") and all(500 <= code < 600 for code in codes)

