"""What intake accepts as a PDF, and what it tells the sender when it does not."""

import json

import pytest

from services.intake.domain import Submission, examine, inspect_pdf
from shared.errors import CodedError
from tests.support.pdfs import make_encrypted_pdf, make_pdf
from tests.support.system import submission

MB = 1_048_576


def refusal(data: bytes, max_bytes: int = MB) -> CodedError:
    with pytest.raises(CodedError) as caught:
        inspect_pdf(data, max_bytes=max_bytes)
    return caught.value


def test_a_readable_pdf_is_accepted_with_its_page_count() -> None:
    """A plain three-page PDF passes and reports three pages."""
    assert inspect_pdf(make_pdf(pages=3), max_bytes=MB).page_count == 3


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
    examined = examine(Submission("submit.permits", body, publisher="permits"), max_pdf_bytes=MB)
    assert examined.refusal is not None
    assert examined.refusal.code == "source_mismatch"
    assert 'published by `permits`' in examined.refusal.reason and '"source": "permits"' in examined.refusal.reason


def test_a_submission_without_user_id_is_told_to_set_it() -> None:
    """A message that carries no AMQP user_id is refused with code missing_user_id, naming the property to set."""
    body = json.dumps(submission(make_pdf())).encode()
    examined = examine(Submission("submit.notula", body, publisher=None), max_pdf_bytes=MB)
    assert examined.refusal is not None and examined.refusal.code == "missing_user_id"
    assert "user_id" in examined.refusal.reason


def test_a_json_array_is_refused() -> None:
    """Valid JSON that is not an object is still refused as a message."""
    examined = examine(Submission("submit.notula", b"[1, 2]", publisher="notula"), max_pdf_bytes=MB)
    assert examined.refusal is not None and examined.refusal.code == "invalid_json"
