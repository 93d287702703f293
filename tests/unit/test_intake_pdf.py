"""What intake refuses in a PDF beyond its size: active content, decompression bombs and files built to crash a
parser, each with its code and a sentence that says what to send instead."""

import pytest

from services.intake.pdf import Limits, inspect_pdf
from shared.errors import CodedError
from tests.support.pdfs import hostile_pdf, make_pdf

MB = 1_048_576
LIMITS = Limits(25 * MB, max_decoded_bytes=32 * MB)


def refusal(data: bytes) -> CodedError:
    with pytest.raises(CodedError) as caught:
        inspect_pdf(data, LIMITS)
    return caught.value


@pytest.mark.parametrize(
    ("kind", "named"),
    [
        ("javascript", "/JavaScript"),
        ("open_action_javascript", "a /JavaScript action"),
        ("launch", "a /Launch action"),
        ("embedded_file", "/EmbeddedFiles"),
    ],
)
def test_active_content_is_refused_naming_what_was_found(kind: str, named: str) -> None:
    """A PDF that runs a script, starts a program or carries a file is refused as active_content, naming it."""
    error = refusal(hostile_pdf(kind))
    assert error.code == "active_content"
    assert named in error.reason and "export it to PDF again without them" in error.reason


def test_a_decompression_bomb_is_refused_without_unpacking_it() -> None:
    """A small file whose stream inflates past the limit is refused as decompression_bomb, naming the limit."""
    error = refusal(hostile_pdf("bomb", bomb_mb=40))
    assert error.code == "decompression_bomb"
    assert "more than 32.0 MB" in error.reason


def test_compressed_streams_within_the_limit_are_accepted() -> None:
    """A stream that inflates to less than the limit is an ordinary PDF."""
    assert inspect_pdf(hostile_pdf("bomb", bomb_mb=8), LIMITS).page_count == 1


def test_a_deeply_nested_array_is_refused_as_broken_not_a_crash() -> None:
    """100,000 nested arrays in the catalog end in broken_pdf, not in a RecursionError escaping the check."""
    error = refusal(hostile_pdf("deep_array"))
    assert (error.code, error.reason) == ("broken_pdf", "the PDF cannot be read: its objects are nested too deeply")


def test_an_xref_section_that_names_itself_as_previous_is_refused_as_broken() -> None:
    """A cross-reference chain that loops is refused as broken_pdf instead of being followed forever."""
    assert refusal(hostile_pdf("xref_loop")).code == "broken_pdf"


def test_a_link_to_a_page_in_the_same_document_is_not_active_content() -> None:
    """An /OpenAction that only opens a page is harmless and accepted."""
    assert inspect_pdf(make_pdf(catalog=b"/OpenAction [5 0 R /Fit]"), LIMITS).page_count == 1
