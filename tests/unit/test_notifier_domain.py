"""The notifier's pure rules: working days in Brussels, the reminder schedule, due dates, when no mail goes out,
the retry budget and which SMTP answers are final."""

from datetime import UTC, datetime, timedelta
from uuid import uuid4
from zoneinfo import ZoneInfo

import pytest

from services.notifier.domain import (
    GiveUp,
    Move,
    ReminderPolicy,
    Retry,
    RetryBudget,
    Schedule,
    absence_notice,
    add_working_days,
    final_refusal,
    reminder_command_id,
    retry_delay,
    why_no_link_mail,
)
from shared.events import PersonRef

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


def test_the_retry_budget_retries_with_growing_delays_until_the_last_attempt() -> None:
    """With 3 attempts allowed, failures 1 and 2 are retried after 60 s and 120 s; the 3rd gives up, saying why."""
    budget = RetryBudget(max_attempts=3, first_seconds=60, max_seconds=3600)
    assert budget.after_failure(1, "421 busy") == Retry(timedelta(seconds=60))
    assert budget.after_failure(2, "421 busy") == Retry(timedelta(seconds=120))
    assert budget.after_failure(3, "421 busy") == GiveUp("gave up after 3 attempts; last error 421 busy")


@pytest.mark.parametrize(
    ("refused", "codes", "final"),
    [
        ("recipient", [550], True),
        ("recipient", [550, 553], True),
        ("recipient", [550, 450], False),  # one recipient may still be reached later
        ("recipient", [421], False),
        ("message", [554], True),
        ("message", [451], False),
        ("sender", [550], False),  # our own sender address: an operator can fix it
        ("login", [535], False),
    ],
)
def test_only_a_5xx_refusal_of_the_recipients_or_the_message_is_final(refused: str, codes: list[int], final: bool) -> None:
    """A 5xx for every recipient or for the message is final; 4xx answers and refusals of our own login or sender are not."""
    assert final_refusal(refused, codes) is final


def test_a_link_mail_goes_out_only_to_an_address_for_a_request_still_open() -> None:
    """No address, an ended document or a closed request each withhold the mail, and say why."""
    opened = Schedule(uuid4(), "default", uuid4())
    closed = Schedule(uuid4(), "default", uuid4(), status="closed")
    assert why_no_link_mail("ann@x.be", False, opened) is None
    assert why_no_link_mail("ann@x.be", False) is None
    assert why_no_link_mail(None, False) == "the signer has no address"
    assert why_no_link_mail("ann@x.be", True) == "the document ended"
    assert why_no_link_mail("ann@x.be", False, closed) == "the request is closed"


def test_a_new_request_s_schedule_has_its_due_date_and_first_reminder() -> None:
    """A request made Monday is due the next Monday and first reminded on Thursday; with reminders off it is exhausted at once."""
    requested, request_id, document_id = local(2026, 3, 2, 9, 0), uuid4(), uuid4()
    opened = POLICY.opening(request_id, "default", document_id, requested, requested + timedelta(days=21), None)
    assert opened == Schedule(request_id, "default", document_id, requested, local(2026, 3, 9, 9, 0), local(2026, 3, 5, 9, 0))
    off = ReminderPolicy(after=3, every=2, maximum=0, due_after=5, timezone="Europe/Brussels")
    assert off.opening(request_id, "default", document_id, requested, requested + timedelta(days=21), None).status == "exhausted"


def test_a_mail_shows_the_request_s_own_due_date_and_is_overdue_once_it_passed() -> None:
    """The due date kept with the request wins over a newly computed one; at or after it, the mail says it is overdue."""
    due = local(2026, 3, 9, 9, 0)
    schedule = Schedule(uuid4(), "default", uuid4(), local(2026, 3, 2, 9, 0), due)
    later = local(2026, 3, 12, 9, 0)
    shown = POLICY.shown_due(schedule, later, later + timedelta(days=21), None)
    assert (shown.at, shown.overdue) == (due, True)
    assert POLICY.shown_due(schedule, local(2026, 3, 4, 9, 0), later, None).overdue is False
    assert POLICY.shown_due(None, local(2026, 3, 2, 9, 0), later + timedelta(days=21), None).at == due


def test_the_next_reminder_counts_from_the_ones_already_asked() -> None:
    """A schedule that asked two reminders asks the third, with its own command id, and plans none after it."""
    schedule = Schedule(uuid4(), "default", uuid4(), sent=2)
    asked_at = local(2026, 3, 11, 10, 0)
    reminder = POLICY.reminder(schedule, asked_at)
    assert (reminder.number, reminder.command_id, reminder.next_at) == (3, reminder_command_id(schedule.request_id, 3), None)


def test_an_absence_notice_lists_every_move_keyed_by_the_first_and_names_each_document_once() -> None:
    """Three moves over two documents: one notice keyed by the first move, to the absent person, about two documents."""
    bart = PersonRef(id="bart", name="Bart Baert", email="bart@x.be")
    sofie = PersonRef(id="sofie", name="Sofie Smet")
    first_document, second_document = uuid4(), uuid4()
    moves = [
        Move(uuid4(), "default", document, bart, sofie, "Besluit", "absent", local(2026, 3, 2, 9, minute))
        for minute, document in ((0, first_document), (1, second_document), (2, first_document))
    ]
    notice = absence_notice(moves)
    assert (notice.mail_id, notice.person, notice.document_id) == (moves[0].event_id, bart, first_document)
    assert notice.documents == (first_document, second_document) and notice.moves == tuple(moves)
