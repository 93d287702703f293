"""Fuzzing what a partner system can send: whatever the bytes, intake's reading of a submission and its check of a
PDF end in an accepted command or a coded refusal — never another exception, which would leave the message
unanswered. 500 examples each on every run; 10,000 with PARAAF_FUZZ_EXAMPLES=10000 (make fuzz, nightly)."""

import base64
import json
import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.intake.domain import Submission, examine
from services.intake.pdf import Limits, inspect_pdf
from shared.errors import CodedError
from tests.support.pdfs import make_pdf
from tests.support.system import submission

EXAMPLES = int(os.environ.get("PARAAF_FUZZ_EXAMPLES", "500"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
LIMITS = Limits(1_048_576, max_decoded_bytes=8 * 1_048_576)
VALID_PDF = make_pdf(pages=2)
VALID = submission(VALID_PDF)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)


@st.composite
def mutated_pdfs(draw: st.DrawFn) -> bytes:
    """A valid PDF with a few bytes flipped, cut out or inserted, or cut short."""
    data = bytearray(VALID_PDF)
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(data) - 1))
        match draw(st.sampled_from(["flip", "cut", "insert", "truncate"])):
            case "flip":
                data[at] = draw(st.integers(0, 255))
            case "cut":
                del data[at : at + draw(st.integers(1, 40))]
            case "insert":
                data[at:at] = draw(st.binary(min_size=1, max_size=40))
            case "truncate":
                del data[max(at, 10) :]
        if not data:
            break
    return bytes(data)


@st.composite
def submissions(draw: st.DrawFn) -> bytes:
    """A submission with fields dropped, replaced by any JSON value, or added; or raw bytes."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=200))
    body = {k: v for k, v in VALID.items() if draw(st.booleans()) or k in ("source",)}
    body.update(draw(st.dictionaries(st.sampled_from([*VALID, "steps", "org", "metadata", "language"]), json_values, max_size=3)))
    if draw(st.booleans()):
        body["pdf"] = base64.b64encode(draw(mutated_pdfs())).decode()
    return json.dumps(body).encode()


@FUZZ
@given(mutated_pdfs())
def test_any_mutation_of_a_pdf_is_accepted_or_refused_with_a_code(data: bytes) -> None:
    """inspect_pdf on a damaged PDF returns its facts or raises CodedError, nothing else."""
    try:
        assert inspect_pdf(data, LIMITS).page_count >= 1
    except CodedError as refusal:
        assert refusal.code in {"not_pdf", "broken_pdf", "encrypted_pdf", "too_large", "active_content", "decompression_bomb"}
        assert refusal.reason


@FUZZ
@given(submissions())
def test_any_submission_body_is_read_or_refused_with_a_code(body: bytes) -> None:
    """examine() on any body from source notula returns a command or a coded refusal with a sentence, never raises."""
    examined = examine(Submission("submit.notula", body, "notula"), LIMITS)
    assert (examined.command is None) != (examined.refusal is None)
    if examined.refusal is not None:
        assert examined.refusal.code and examined.refusal.reason
