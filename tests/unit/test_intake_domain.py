"""What intake accepts as a PDF, and what it tells the sender when it does not."""

import json
from datetime import UTC, datetime, timedelta

import pytest

from services.intake.domain import Submission, examine, external_ref_of, oversized, timely
from services.intake.pdf import Limits, inspect_pdf
from shared.errors import CodedError
from tests.support.pdfs import make_encrypted_pdf, make_pdf
from tests.support.system import submission

MB = 1_048_576


def refusal(data: bytes, max_bytes: int = MB) -> CodedError:
    with pytest.raises(CodedError) as caught:
        inspect_pdf(data, Limits(max_bytes))
    return caught.value


def test_a_readable_pdf_is_accepted_with_its_page_count() -> None:
    """A plain three-page PDF passes and reports three pages."""
    assert inspect_pdf(make_pdf(pages=3), Limits(MB)).page_count == 3


def test_text_is_not_a_pdf() -> None:
    """A text file is refused as not being a PDF."""
    assert refusal(b"Dear council, ...").code == "not_pdf"


def test_an_encrypted_pdf_is_refused() -> None:
    """A password-protected PDF cannot be signed and is refused."""
    assert refusal(make_encrypted_pdf()).code == "encrypted_pdf"


def test_a_truncated_pdf_is_refused_as_broken() -> None:
    """A PDF cut short is refused as unreadable."""
    assert refusal(make_pdf()[:300]).code == "broken_pdf"


def test_a_pdf_over_the_limit_says_both_sizes() -> None:
    """A too-large PDF is told its size and the limit."""
    error = refusal(make_pdf(), max_bytes=100)
    assert error.code == "too_large"
    assert "the limit is 0 KB" in error.reason


def test_a_source_submits_only_under_its_own_name() -> None:
    """A submission naming `notula`, published by source `permits` on `submit.permits`, is refused, saying what to send."""
    body = json.dumps(submission(make_pdf())).encode()
    examined = examine(Submission("submit.permits", body, publisher="permits"), Limits(MB))
    assert examined.refusal is not None
    assert examined.refusal.code == "source_mismatch"
    assert 'published by `permits`' in examined.refusal.reason and '"source": "permits"' in examined.refusal.reason


def test_a_submission_without_user_id_is_told_to_set_it() -> None:
    """A message that carries no AMQP user_id is refused with code missing_user_id, naming the property to set."""
    body = json.dumps(submission(make_pdf())).encode()
    examined = examine(Submission("submit.notula", body, publisher=None), Limits(MB))
    assert examined.refusal is not None and examined.refusal.code == "missing_user_id"
    assert "user_id" in examined.refusal.reason


def test_a_json_array_is_refused() -> None:
    """Valid JSON that is not an object is still refused as a message."""
    examined = examine(Submission("submit.notula", b"[1, 2]", publisher="notula"), Limits(MB))
    assert examined.refusal is not None and examined.refusal.code == "invalid_json"


@pytest.mark.parametrize("content_type", [None, "application/json", "application/json; charset=utf-8"])
def test_a_json_submission_with_or_without_its_content_type_is_read(content_type: str | None) -> None:
    """content_type application/json, with parameters or left out, is what a submission may carry."""
    body = json.dumps(submission(make_pdf())).encode()
    examined = examine(Submission("submit.notula", body, "notula", content_type), Limits(MB))
    assert examined.refusal is None and examined.page_count == 1


def test_a_submission_that_says_it_is_not_json_is_refused_naming_its_content_type() -> None:
    """A message with content_type application/pdf is refused as invalid_content_type, saying what to send."""
    body = json.dumps(submission(make_pdf())).encode()
    examined = examine(Submission("submit.notula", body, "notula", "application/pdf"), Limits(MB))
    assert examined.refusal is not None and examined.refusal.code == "invalid_content_type"
    assert "`application/pdf`" in examined.refusal.reason and "application/json" in examined.refusal.reason


def test_a_message_too_long_for_any_allowed_pdf_is_refused_before_it_is_read() -> None:
    """A 40 MB message for a 25 MB PDF limit is refused as too_large, naming both limits, and its source and reference
    are still found to answer (searched for, not parsed)."""
    body = json.dumps({**submission(make_pdf()), "pdf": "A" * (40 * MB)}).encode()
    examined = oversized(Submission("submit.notula", body, "notula"), Limits(25 * MB))
    assert examined is not None and examined.refusal is not None and examined.refusal.code == "too_large"
    assert "at most 25.0 MB (PARAAF_MAX_PDF_MB)" in examined.refusal.reason
    assert external_ref_of(examined.submission) == submission(make_pdf())["external_ref"]
    assert oversized(Submission("submit.notula", json.dumps(submission(make_pdf())).encode(), "notula"), Limits(25 * MB)) is None


NOON = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
THREE_WEEKS = timedelta(days=21)


def examined_due(due_at: str, now: datetime = NOON) -> CodedError | None:
    body = json.dumps(submission(make_pdf(), due_at=due_at)).encode()
    examined = timely(examine(Submission("submit.notula", body, "notula"), Limits(MB)), now, THREE_WEEKS)
    assert (examined.command is None) == (examined.refusal is not None)
    return examined.refusal


def test_a_due_date_within_the_links_lifetime_is_carried() -> None:
    """A submission due in an hour is accepted with its due date as the instant it named."""
    body = json.dumps(submission(make_pdf(), due_at="2026-11-30T14:00:00+01:00")).encode()
    examined = timely(examine(Submission("submit.notula", body, "notula"), Limits(MB)), NOON, THREE_WEEKS)
    assert examined.refusal is None and examined.command is not None
    assert examined.command.due_at == NOON + timedelta(hours=1)


def test_a_due_date_that_has_passed_is_refused() -> None:
    """A due date a minute ago (by the services' clock) is refused as due_passed, naming the field and the time now."""
    error = examined_due("2026-11-30T11:59:00Z")
    assert error is not None and error.code == "due_passed"
    assert "`due_at`" in error.reason and "2026-11-30T12:00:00+00:00" in error.reason


def test_a_due_date_after_the_link_stops_working_is_refused() -> None:
    """A due date four weeks ahead, with links that work three weeks, is refused as due_too_late, naming the setting."""
    error = examined_due("2026-12-28T12:00:00Z")
    assert error is not None and error.code == "due_too_late"
    assert "504 hours (PARAAF_LINK_TTL_HOURS)" in error.reason and "2026-12-21T12:00:00+00:00" in error.reason
    assert examined_due("2026-12-21T12:00:00Z") is None  # the last moment the link works is still a due date it can keep


def test_a_due_date_without_a_time_zone_is_refused() -> None:
    """`2026-11-30T15:00` could be any of the world's 3 p.m.s: it is refused, asking for an offset."""
    examined = examine(Submission("submit.notula", json.dumps(submission(make_pdf(), due_at="2026-11-30T15:00")).encode(), "notula"), Limits(MB))
    assert examined.refusal is not None and examined.refusal.code == "invalid_message"
    assert "field `due_at` must name its time zone" in examined.refusal.reason
