"""Intake's handlers on an in-memory store: a submission accepted, refused or submitted again, and a document's end told to its source."""

import base64
import json
from uuid import uuid4

import pytest

from services.intake import handlers
from services.intake.domain import SourcePolicy, Submission, examine
from services.intake.pdf import Limits
from services.intake.store import Document
from shared.contract import Outcome, QueryStatus, StatusReport, WithdrawDocument, WithdrawSubmission
from shared.events import (
    DocumentAccepted,
    DocumentCompleted,
    DocumentDeclined,
    DocumentRejected,
    DocumentSubmitted,
    DocumentWithdrawn,
    PersonRef,
)
from shared.messaging import Delivery, PermanentError
from tests.support.fakes.intake import FakeIntakeStore
from tests.support.pdfs import make_pdf
from tests.support.system import submission

MB = 1_048_576
NOTULA = SourcePolicy("notula", "default", ad_hoc_steps=True)
PERMITS = SourcePolicy("omgeving", "default", flows=frozenset({"omgevingsvergunning"}), submitters=frozenset({"elen.elaut"}))


async def submit(store: FakeIntakeStore, body: dict | bytes, source: str = "notula", publisher: str | None = "notula") -> None:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    examined = examine(Submission(f"submit.{source}", raw, publisher), Limits(MB))
    await handlers.on_submission(examined, store)


def outcomes(store: FakeIntakeStore) -> list[tuple[str, str | None]]:
    return [(o.status, o.code) for o in store.sent(Outcome)]


async def test_a_valid_submission_becomes_a_document_announced_to_the_router() -> None:
    """One document stored for the source's org, its PDF registered as revision 0, document.submitted with its facts; no answer yet."""
    store = FakeIntakeStore(NOTULA)
    pdf = make_pdf(pages=3)
    await submit(store, submission(pdf, filename="../../besluit 42.pdf"))
    [document] = store.documents.values()
    [announced] = store.sent(DocumentSubmitted)
    assert (document.org, document.filename, announced.page_count, announced.filename) == ("default", "besluit 42.pdf", 3, "besluit 42.pdf")
    assert await store.version_digests(document.document_id, "default") == [announced.pdf_sha256]
    assert store.sent(Outcome) == []


async def test_the_same_reference_with_the_same_pdf_again_changes_nothing() -> None:
    """A resubmission is the same submission: still one document, nothing announced twice."""
    store = FakeIntakeStore(NOTULA)
    body = submission(make_pdf())
    await submit(store, body)
    await submit(store, body)
    assert len(store.documents) == 1 and len(store.sent(DocumentSubmitted)) == 1 and store.sent(Outcome) == []


async def test_the_same_reference_with_another_pdf_is_refused_as_duplicate_ref() -> None:
    """Another PDF under a used reference: rejected duplicate_ref, kept for operators, the first document untouched."""
    store = FakeIntakeStore(NOTULA)
    await submit(store, submission(make_pdf()))
    await submit(store, submission(make_pdf(text="another")))
    assert outcomes(store) == [("rejected", "duplicate_ref")]
    assert len(store.documents) == 1 and len(store.refused) == 1


@pytest.mark.parametrize(
    ("source", "publisher", "changes", "code"),
    [
        ("notula", "notula", {"title": None}, "invalid_message"),
        ("notula", None, {}, "missing_user_id"),
        ("omgeving", "omgeving", {"source": "omgeving", "flow": "collegebesluit"}, "forbidden_flow"),
        ("omgeving", "omgeving", {"source": "omgeving", "flow": "omgevingsvergunning", "submitted_by": "bart"}, "forbidden_submitter"),
        ("notula", "notula", {"org": "othercity"}, "forbidden_org"),
        ("loket", "loket", {"source": "loket"}, "unknown_source"),
    ],
)
async def test_a_refused_submission_is_answered_announced_and_kept(source: str, publisher: str | None, changes: dict, code: str) -> None:
    """Each refusal: a rejected outcome with its code, document.rejected for the audit log, the original kept byte for byte."""
    store = FakeIntakeStore(NOTULA, PERMITS)
    body = {k: v for k, v in {**submission(make_pdf()), **changes}.items() if v is not None}
    await submit(store, body, source, publisher)
    assert outcomes(store) == [("rejected", code)]
    [rejected] = store.sent(DocumentRejected)
    assert rejected.code == code and rejected.source == source
    [(_, original, headers)] = store.refused
    assert original == json.dumps(body).encode() and headers["x-paraaf-code"] == code
    assert store.documents == {}


async def test_unreadable_json_is_answered_to_the_source_that_published_it() -> None:
    """Bytes that are no JSON at all: invalid_json to the publishing source."""
    store = FakeIntakeStore(NOTULA)
    await submit(store, b"\xff\xfe not even text")
    [answer] = store.sent(Outcome)
    assert (answer.source, answer.code) == ("notula", "invalid_json")


def document(store: FakeIntakeStore, **changes: object) -> Document:
    doc = Document(uuid4(), "default", "notula", "R-1", "Besluit", "elen.elaut", "b.pdf", "0" * 64, **changes)  # type: ignore[arg-type]
    store.documents[doc.document_id] = doc
    return doc


@pytest.mark.parametrize(
    ("event", "status", "reason"),
    [
        (lambda d: DocumentAccepted(correlation_id=d, flow="collegebesluit", step_count=2), "accepted", None),
        (lambda d: DocumentDeclined(correlation_id=d, declined_by=PersonRef(id="a", name="Ann Aerts"), reason="fout"),
         "declined", "declined by Ann Aerts: fout"),
        (lambda d: DocumentWithdrawn(correlation_id=d, withdrawn_by="elen.elaut", reason="oud"), "withdrawn", "withdrawn by elen.elaut: oud"),
    ],
)
async def test_a_document_s_progress_is_told_to_its_source(event, status: str, reason: str | None) -> None:
    """Accepted, declined, withdrawn: the document's status moves and its source gets the outcome with the reason."""
    store = FakeIntakeStore()
    doc = document(store)
    handler = {"accepted": handlers.on_document_accepted, "declined": handlers.on_document_declined,
               "withdrawn": handlers.on_document_withdrawn}[status]
    await handler(event(doc.document_id), store)
    [outcome] = store.sent(Outcome)
    assert (outcome.status, outcome.reason, outcome.external_ref) == (status, reason, "R-1")
    assert store.documents[doc.document_id].status == status


async def test_a_completed_document_goes_back_with_its_signed_pdf() -> None:
    """document.completed naming a version of the document: the completed outcome carries that PDF and the signatures."""
    store = FakeIntakeStore()
    doc = document(store)
    signed = make_pdf(text="signed")
    digest = await store.put_pdf(signed)
    await store.register_version(doc.document_id, 1, "default", digest)
    await handlers.on_document_completed(DocumentCompleted(correlation_id=doc.document_id, pdf_sha256=digest, signatures=[]), store)
    [outcome] = store.sent(Outcome)
    assert outcome.status == "completed" and base64.b64decode(outcome.pdf) == signed
    assert store.documents[doc.document_id].signed_sha256 == digest


async def test_a_completion_naming_a_pdf_that_is_no_version_of_the_document_is_refused() -> None:
    """document.completed with a PDF the document never had: PermanentError, no outcome, status unchanged."""
    store = FakeIntakeStore()
    doc = document(store)
    with pytest.raises(PermanentError):
        await handlers.on_document_completed(DocumentCompleted(correlation_id=doc.document_id, pdf_sha256="9" * 64, signatures=[]), store)
    assert store.sent(Outcome) == [] and store.documents[doc.document_id].status == "submitted"


async def test_a_document_the_router_refused_is_answered_and_kept_once() -> None:
    """The router's document.rejected: the source gets the rejection and the rebuilt original is kept; not announced again."""
    store = FakeIntakeStore()
    doc = document(store)
    store.blobs[doc.pdf_sha256] = make_pdf()
    await handlers.on_document_rejected(
        DocumentRejected(correlation_id=doc.document_id, source="notula", code="unknown_flow", reason="flow `x` does not exist"), store
    )
    assert outcomes(store) == [("rejected", "unknown_flow")]
    assert store.sent(DocumentRejected) == [] and len(store.refused) == 1


# A source's requests about its own documents (withdraw.<source>, status.<source>).

def _asked(routing_key: str) -> Delivery:
    return Delivery(routing_key, b"{}", "paraaf.source.x", "question-1")


async def _accepted(store: FakeIntakeStore, ref: str = "BESL-1") -> Document:
    await submit(store, submission(make_pdf(), external_ref=ref))
    document = next(d for d in store.documents.values() if d.external_ref == ref)
    await handlers.on_document_accepted(DocumentAccepted(correlation_id=document.document_id, org="default", flow="collegebesluit", step_count=1), store)
    return document


async def test_a_source_withdrawing_its_accepted_document_asks_the_router_as_the_source() -> None:
    """WithdrawDocument for that document, by `source:notula`, with the source's reason; no answer yet (the router's comes)."""
    store = FakeIntakeStore(NOTULA)
    document = await _accepted(store)
    await handlers.on_withdraw_submission(
        WithdrawSubmission(source="notula", external_ref="BESL-1", reason="moved"), store, _asked("withdraw.notula")
    )
    [command] = store.sent(WithdrawDocument)
    assert (command.correlation_id, command.withdrawn_by, command.reason) == (document.document_id, "source:notula", "moved")
    assert store.sent(StatusReport) == []


@pytest.mark.parametrize(
    ("routing_key", "named", "ref", "code"),
    [
        ("withdraw.omgeving", "omgeving", "BESL-1", "unknown_document"),  # notula's reference, asked by another source
        ("withdraw.omgeving", "notula", "BESL-1", "source_mismatch"),  # another source's name in its own request
        ("withdraw.notula", "notula", "BESL-2", "not_yet_accepted"),
    ],
)
async def test_a_withdrawal_that_cannot_be_done_is_answered_with_why(routing_key: str, named: str, ref: str, code: str) -> None:
    """Nothing goes to the router; the asking source gets <source>.status with query withdraw and the code."""
    store = FakeIntakeStore(NOTULA, PERMITS)
    await _accepted(store)
    await submit(store, submission(make_pdf(2), external_ref="BESL-2"))
    await handlers.on_withdraw_submission(WithdrawSubmission(source=named, external_ref=ref, reason="r"), store, _asked(routing_key))
    [report] = store.sent(StatusReport)
    assert store.sent(WithdrawDocument) == []
    assert (report.routing_key, report.query, report.code) == (f"{routing_key.split('.')[1]}.status", "withdraw", code)


async def test_a_status_question_is_answered_with_where_the_document_stands() -> None:
    """<source>.status names the document, its status and the question's message id; another source's reference is unknown."""
    store = FakeIntakeStore(NOTULA, PERMITS)
    document = await _accepted(store)
    await handlers.on_query_status(QueryStatus(source="notula", external_ref="BESL-1"), store, _asked("status.notula"))
    await handlers.on_query_status(QueryStatus(source="omgeving", external_ref="BESL-1"), store, _asked("status.omgeving"))
    mine, theirs = store.sent(StatusReport)
    assert (mine.status, mine.document_id, mine.in_reply_to) == ("accepted", document.document_id, "question-1")
    assert (theirs.routing_key, theirs.status, theirs.document_id) == ("omgeving.status", "unknown", None)
