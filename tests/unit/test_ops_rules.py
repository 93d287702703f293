"""The operator's views as pure rules: working days, ages, stuck documents, topic patterns and hidden titles."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from services.ops.documents import Filters, listed
from services.ops.rules import HIDDEN_TITLE, is_stuck, parse_age, summary, topic_matches, working_days_between
from services.ops.tail import Seen, line

BRUSSELS = "Europe/Brussels"
MONDAY_9 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)  # 09:00 in Brussels


@pytest.mark.parametrize(
    ("end", "days"),
    [
        (MONDAY_9, 0),
        (MONDAY_9 + timedelta(hours=23), 0),  # Tuesday 08:00: not a whole day yet
        (MONDAY_9 + timedelta(days=1), 1),
        (MONDAY_9 + timedelta(days=4), 4),  # Friday
        (MONDAY_9 + timedelta(days=6), 4),  # Sunday: the weekend does not count
        (MONDAY_9 + timedelta(days=7), 5),  # next Monday
        (MONDAY_9 + timedelta(days=14), 10),
        (MONDAY_9 - timedelta(days=1), 0),  # before it started
    ],
)
def test_working_days_count_monday_to_friday_once_the_time_of_day_is_reached(end: datetime, days: int) -> None:
    """From a Monday 09:00, a working day counts at 09:00 on each later weekday; Saturday and Sunday never count."""
    assert working_days_between(MONDAY_9, end, BRUSSELS) == days


def test_a_weekend_submission_starts_counting_on_monday() -> None:
    """Sent on Saturday, a document has waited one working day on Monday at the same time of day."""
    saturday = datetime(2026, 3, 7, 10, 0, tzinfo=UTC)
    assert working_days_between(saturday, saturday + timedelta(days=2), BRUSSELS) == 1


def test_days_are_counted_on_the_wall_clock_across_daylight_saving() -> None:
    """Across the change to summer time (29 March 2026), a week is still five working days at 09:00 local time."""
    friday_9 = datetime(2026, 3, 27, 8, 0, tzinfo=UTC)
    next_friday_9_summer = datetime(2026, 4, 3, 7, 0, tzinfo=UTC)
    assert working_days_between(friday_9, next_friday_9_summer, BRUSSELS) == 5


def test_stuck_means_more_than_the_allowed_working_days_on_one_step() -> None:
    """With 5 allowed: five working days is not stuck yet, six is; a document with no open step is never stuck."""
    assert not is_stuck(MONDAY_9, MONDAY_9 + timedelta(days=7), 5, BRUSSELS)
    assert is_stuck(MONDAY_9, MONDAY_9 + timedelta(days=8), 5, BRUSSELS)
    assert not is_stuck(None, MONDAY_9 + timedelta(days=80), 5, BRUSSELS)


@pytest.mark.parametrize(("text", "age"), [("12h", timedelta(hours=12)), ("3d", timedelta(days=3)), ("2w", timedelta(days=14))])
def test_an_age_is_hours_days_or_weeks(text: str, age: timedelta) -> None:
    """``--older-than`` takes 12h, 3d and 2w."""
    assert parse_age(text) == age


@pytest.mark.parametrize("text", ["3", "3m", "d", "-2d", "three days"])
def test_anything_else_is_not_an_age_and_the_error_says_what_is(text: str) -> None:
    """A wrong age is refused with the forms that are accepted."""
    with pytest.raises(ValueError, match="12h, 3d, 2w"):
        parse_age(text)


@pytest.mark.parametrize(
    ("pattern", "key", "matches"),
    [
        ("signature.*", "signature.signed", True),
        ("signature.*", "document.completed", False),
        ("*.signed", "signature.signed", True),
        ("#", "dead_letter.dropped", True),
        ("document.#", "document.completed", True),
        ("signature.*", "signature", False),
        ("signature.#", "signature", True),
    ],
)
def test_types_match_routing_keys_as_amqp_topics_do(pattern: str, key: str, matches: bool) -> None:
    """``*`` is one word, ``#`` any number of words, as RabbitMQ binds them."""
    assert topic_matches(pattern, key) is matches


def _record(title: str, *, status: str = "active", confidential: bool = False, shielded: bool = False, **more: object) -> dict:
    return {
        "document_id": uuid.uuid4(), "title": title, "department": "Secretariaat", "status": status,
        "confidential": confidential, "shielded": shielded, "created_at": MONDAY_9, "source": "notula",
        "external_ref": "R-1", "waiting_since": MONDAY_9,
        "pending": [{"person": {"id": "ann.aerts", "name": "Ann Aerts"}, "on_behalf_of": None}] if status == "active" else [],
        **more,
    }


def _listed(records: list[dict], now: datetime, **filters: object) -> list:
    return listed(records, Filters(**filters), now, stuck_after=5, timezone=BRUSSELS)  # type: ignore[arg-type]


def test_an_operator_never_sees_the_title_of_a_confidential_or_shielded_document() -> None:
    """Confidential and shielded titles are shown as (confidential); others as they are."""
    rows = _listed([_record("Besluit"), _record("Evaluatie", confidential=True), _record("OCMW", shielded=True)], MONDAY_9)
    assert [r.title for r in rows] == ["Besluit", HIDDEN_TITLE, HIDDEN_TITLE]


def test_a_document_waiting_too_long_is_stuck_and_still_counts_as_waiting() -> None:
    """After 6 working days an active document shows `stuck`, and both --status stuck and --status waiting list it."""
    later = MONDAY_9 + timedelta(days=8)
    records = [_record("Besluit"), _record("Klaar", status="completed")]
    assert [r.status for r in _listed(records, later)] == ["stuck", "completed"]
    assert [r.title for r in _listed(records, later, status="stuck")] == ["Besluit"]
    assert [r.title for r in _listed(records, later, status="waiting")] == ["Besluit"]
    assert [r.title for r in _listed(records, MONDAY_9, status="stuck")] == []


def test_waiting_on_finds_a_person_by_id_or_part_of_her_name() -> None:
    """`--waiting-on ann.aerts` and `--waiting-on aerts` find Ann's document; `bart` does not."""
    records = [_record("Besluit")]
    assert _listed(records, MONDAY_9, waiting_on="ann.aerts")[0].waiting_on == ("Ann Aerts",)
    assert len(_listed(records, MONDAY_9, waiting_on="Aerts")) == 1
    assert _listed(records, MONDAY_9, waiting_on="bart") == []


def test_a_summary_says_who_did_what_and_never_carries_the_title_or_a_mail_subject() -> None:
    """Events of a confidential document carry its title; the printed line names the signer, not the title."""
    signer = {"id": "ann.aerts", "name": "Ann Aerts"}
    requested = {"title": "Geheim", "signer": signer, "on_behalf_of": {"name": "Bart Baert"}, "step": 1, "step_count": 2}
    mail = {"kind": "request", "recipient": "ann@x.be", "subject": "Te tekenen: Geheim"}
    assert summary("signature.requested", requested) == "signature requested of Ann Aerts for Bart Baert, step 1/2"
    assert summary("notification.sent", mail) == "request mail sent to ann@x.be"
    assert "Geheim" not in summary("document.submitted", {"title": "Geheim", "submitted_by": "elen", "source": "n"})


def test_a_tail_line_is_local_time_key_short_id_and_summary() -> None:
    """The time is on PARAAF_TIMEZONE's clock and the document id is cut to 8 characters."""
    event = {"occurred_at": "2026-03-02T08:00:00+00:00", "correlation_id": "1234567890abcdef", "signer": {"name": "Ann"},
             "step": 2, "action": "sign"}
    assert line(Seen("signature.signed", event), BRUSSELS) == ("2026-03-02 09:00:00", "signature.signed", "12345678", "signed by Ann, step 2")
