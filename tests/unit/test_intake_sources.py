"""What a registered source may submit, and the filename a PDF is passed on under."""

import pytest

from services.intake.domain import SourcePolicy, authorise, safe_filename
from shared.errors import CodedError
from shared.http import content_disposition

PERMITS = SourcePolicy("omgeving", "default", flows=frozenset({"omgevingsvergunning"}), submitters=frozenset({"elen.elaut"}))
MINUTES = SourcePolicy("notula", "default", ad_hoc_steps=True)


def refused(policy: SourcePolicy, **submission: object) -> CodedError:
    arguments = {"org": None, "flow": "omgevingsvergunning", "has_steps": False, "submitted_by": "elen.elaut", **submission}
    with pytest.raises(CodedError) as caught:
        authorise(policy, **arguments)  # type: ignore[arg-type]
    return caught.value


def test_a_submission_within_its_source_s_rights_goes_to_the_source_s_org() -> None:
    """No org given, its own flow and submitter: accepted for the source's org."""
    assert authorise(PERMITS, org=None, flow="omgevingsvergunning", has_steps=False, submitted_by="elen.elaut") == "default"


def test_naming_the_source_s_own_org_is_fine() -> None:
    """`org` equal to the source's own org is accepted."""
    assert authorise(MINUTES, org="default", flow="collegebesluit", has_steps=False, submitted_by="bart.baert") == "default"


@pytest.mark.parametrize(
    ("policy", "submission", "code"),
    [
        (PERMITS, {"org": "othercity"}, "forbidden_org"),
        (PERMITS, {"flow": "collegebesluit"}, "forbidden_flow"),
        (PERMITS, {"submitted_by": "bart.baert"}, "forbidden_submitter"),
        (PERMITS, {"flow": None, "has_steps": True}, "forbidden_steps"),
        (MINUTES, {"org": "othercity"}, "forbidden_org"),
    ],
)
def test_what_a_source_was_not_given_is_refused_with_its_code(policy: SourcePolicy, submission: dict, code: str) -> None:
    """Another org, a flow, a submitter or own steps the source was not given: refused with the matching code."""
    assert refused(policy, **submission).code == code


def test_a_refusal_says_what_the_source_may_do() -> None:
    """The flow refusal names the flows the source has."""
    assert "its flows are `omgevingsvergunning`" in refused(PERMITS, flow="collegebesluit").reason


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("besluit-42.pdf", "besluit-42.pdf"),
        ("../../etc/passwd", "passwd.pdf"),
        ("C:\\Users\\jan\\besluit.PDF", "besluit.pdf"),
        ("besluit\r\nX-Injected: yes.pdf", "besluitX-Injected_ yes.pdf"),
        ('a"b<c>.pdf', "a_b_c_.pdf"),
        ("besluit-ő–€.pdf", "besluit-ő–€.pdf"),
        ("...", "document.pdf"),
        ("x" * 300 + ".pdf", "x" * 116 + ".pdf"),
        ("rapport", "rapport.pdf"),
    ],
)
def test_a_filename_loses_paths_control_and_reserved_characters(given: str, kept: str) -> None:
    """What intake stores and offers: no path, no control or reserved characters, at most 120 characters, `.pdf`."""
    assert safe_filename(given) == kept


def test_content_disposition_carries_the_name_in_utf8_with_an_ascii_fallback() -> None:
    """RFC 6266: filename* in UTF-8, percent-encoded, and a plain ASCII filename for old clients."""
    assert content_disposition("attachment", "besluit-ő–€.pdf") == (
        "attachment; filename=\"besluit-o.pdf\"; filename*=UTF-8''besluit-%C5%91%E2%80%93%E2%82%AC.pdf"
    )
