"""The external contract: what a malformed submission is told."""

import base64
import pickle

import pytest
from pydantic import ValidationError

from shared.contract import SubmitDocument, describe_validation_error
from shared.errors import CodedError
from shared.topology import TOPOLOGY

VALID = {
    "source": "notula",
    "external_ref": "BESL-1",
    "title": "Collegebesluit 1",
    "flow": "collegebesluit",
    "submitted_by": "elen.elaut",
    "pdf": base64.b64encode(b"%PDF-1.7").decode(),
}


def reason(**changes: object) -> str:
    data = {**VALID, **changes}
    for key in [k for k, v in changes.items() if v is None]:
        del data[key]
    with pytest.raises(ValidationError) as caught:
        SubmitDocument.model_validate(data)
    return describe_validation_error(caught.value)


def test_a_valid_submission_decodes_its_pdf() -> None:
    """The base64 PDF arrives as bytes."""
    assert SubmitDocument.model_validate(VALID).pdf == b"%PDF-1.7"


def test_a_missing_field_is_named() -> None:
    """A submission without a title is told which field is missing."""
    assert reason(title=None) == "missing field `title`"


def test_a_pdf_that_is_not_base64_is_named() -> None:
    """Garbage in `pdf` is reported as not being base64."""
    assert reason(pdf="not base64!!") == "field `pdf` is not valid base64"


def test_a_flow_and_steps_together_are_refused() -> None:
    """A submission names a flow or carries steps, never both."""
    assert "exactly one of `flow`" in reason(steps=[{"signers": ["person:a"]}])


def test_a_source_with_spaces_is_refused() -> None:
    """The source becomes a routing key, so it must be a plain word."""
    assert reason(source="the notula").startswith("field `source`")


@pytest.mark.parametrize(
    ("changes", "where"),
    [
        ({"title": "Besluit\x00 1"}, "title"),
        ({"metadata": {"zaak": ["ok", "Z\x00"]}}, "metadata.zaak.1"),
        ({"metadata": {"za\x00ak": 1}}, "metadata.za\\u0000ak"),
    ],
    ids=["title", "nested value", "key"],
)
def test_a_nul_character_anywhere_is_refused_naming_where(changes: dict, where: str) -> None:
    """U+0000 cannot be stored, so it is the sender's error to fix: refused at once, naming the field."""
    assert reason(**changes) == f"field `{where}` contains a NUL character (\\u0000), which no text may hold; remove it"


def test_a_refusal_survives_the_trip_from_a_worker_process() -> None:
    """A CodedError pickled and unpickled (as from a worker process) keeps its code and reason."""
    again = pickle.loads(pickle.dumps(CodedError("active_content", "the PDF holds /JavaScript")))
    assert (again.code, again.reason) == ("active_content", "the PDF holds /JavaScript")


def test_only_the_operator_may_record_a_dropped_dead_letter() -> None:
    """dead_letter.dropped is owned by the operator's broker user: the audit log takes it from `paraaf dlq drop` only."""
    assert TOPOLOGY.trusted_users("paraaf", "dead_letter.dropped") == frozenset({"paraaf.operator"})
    assert "paraaf.operator" not in TOPOLOGY.trusted_users("paraaf", "document.withdrawn")
