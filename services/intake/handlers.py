"""Intake's handlers: a submission in, and a document's end back out to its
source. Each loads from an :class:`IntakeStore`, asks domain.py, and writes.

Every refusal is answered: a ``<source>.rejected`` outcome whose reason says
what was wrong, a ``document.rejected`` event for the audit log, and the
original message kept in queue ``intake.rejected``.
"""

import base64
import hashlib
import json
from uuid import NAMESPACE_URL, UUID, uuid4, uuid5

import structlog
from faststream.rabbit.annotations import RabbitMessage

from services.intake.checks import SubmissionChecks
from services.intake.domain import (
    Examined,
    Submission,
    authorise,
    examine,
    external_ref_of,
    resubmission,
    safe_filename,
    source_of,
)
from services.intake.store import Document, IntakeStore, Rejection
from shared.blobs import sha256_hex
from shared.contract import Outcome, QueryStatus, StatusReport, SubmitDocument, WithdrawDocument, WithdrawSubmission
from shared.errors import CodedError
from shared.events import (
    DocumentAccepted,
    DocumentCompleted,
    DocumentDeclined,
    DocumentRejected,
    DocumentSubmitted,
    DocumentWithdrawn,
)
from shared.messaging import UNTRUSTED, Consumer, Delivery, PermanentError, delivery_of
from shared.topology import source_of_user

__all__ = [
    "on_document_accepted",
    "on_submit_document",
    "on_unreadable_submission",
    "submission_key",
    "on_document_completed",
    "on_document_declined",
    "on_document_rejected",
    "on_document_withdrawn",
    "on_submission",
    "on_query_status",
    "on_unreadable_request",
    "on_withdraw_submission",
    "status_of",
]


def submission_key(_: object, msg: RabbitMessage) -> UUID:
    """A submission's inbox key: the same message delivered twice (same id, same bytes) is handled once."""
    return uuid5(NAMESPACE_URL, f"{msg.message_id}:{hashlib.sha256(msg.body).hexdigest()}")


def _submission(delivery: Delivery, prefix: str) -> Submission:
    return Submission(delivery.routing_key, delivery.body, source_of_user(prefix, delivery.publisher), delivery.content_type)


async def on_submit_document(
    command: SubmitDocument, store: IntakeStore, delivery: Delivery, *, checks: SubmissionChecks, prefix: str
) -> None:
    """A well-formed submission from its own source: check its PDF (in a worker), then accept or answer."""
    await on_submission(await checks.command(_submission(delivery, prefix), command), store)


async def on_unreadable_submission(consumer: Consumer, msg: RabbitMessage, why: str, *, checks: SubmissionChecks, prefix: str) -> None:
    """Anything else on intake.submissions: answered with what is wrong, unless someone else published it for the source."""
    delivery = delivery_of(msg)
    if why == UNTRUSTED and delivery.publisher is not None:
        await consumer.park(msg, why)  # not the source's own user: no answer goes out in its name
        return
    examined = await checks(examine, _submission(delivery, prefix))
    await consumer.once(msg, submission_key(None, msg), lambda store: on_submission(examined, store))


async def on_submission(examined: Examined, store: IntakeStore) -> Document | Rejection:
    """Accept the examined submission for its source's org (the document, new or the same one again), or answer
    why not (the rejection)."""
    submission = examined.submission
    source = source_of(submission)
    # A command's reference is locked with its policy's read: a copy of it handled meanwhile waits (see _accept).
    policy = await store.source_policy(source, lock_ref=examined.command.external_ref if examined.command else None)
    org = policy.org if policy else "default"
    try:
        if examined.refusal is not None:
            raise examined.refusal
        if policy is None:
            raise CodedError("unknown_source", f"source `{source}` is not registered; an administrator adds it with `paraaf sources add`")
        command = examined.command
        org = authorise(policy, org=command.org, flow=command.flow, has_steps=command.steps is not None, submitted_by=command.submitted_by)
        return await _accept(store, command, examined.page_count, org=org, original=submission.body)
    except CodedError as refusal:
        return await _reject(
            store, org=org, source=source, external_ref=external_ref_of(submission), refusal=refusal, original=submission.body
        )


async def _accept(store: IntakeStore, command: SubmitDocument, page_count: int, *, org: str, original: bytes) -> Document:
    digest = sha256_hex(command.pdf)
    # The reference was locked with the policy's read: added here unless it has a document already (then nothing is).
    document = _document(command, uuid4(), org, digest)
    existing = await store.add_document(document, command.pdf)
    verdict = resubmission(existing.pdf_sha256 if existing else None, digest)
    if verdict == "same":
        structlog.get_logger().info("resubmission ignored", document_id=str(existing.document_id))
        return existing
    if verdict == "duplicate_ref":
        raise CodedError(
            "duplicate_ref",
            f"external_ref `{command.external_ref}` was already submitted with another PDF"
            f" (document {existing.document_id}); use a new external_ref",
        )
    structlog.contextvars.bind_contextvars(document_id=str(document.document_id))
    await store.publish(_submitted(document, command, page_count))
    structlog.get_logger().info("document submitted", source=command.source, external_ref=command.external_ref)
    return document


def _document(command: SubmitDocument, document_id: UUID, org: str, digest: str) -> Document:
    return Document(
        document_id=document_id,
        org=org,
        source=command.source,
        external_ref=command.external_ref,
        title=command.title,
        submitted_by=command.submitted_by,
        filename=safe_filename(command.filename),
        pdf_sha256=digest,
        flow=command.flow,
        steps=tuple(command.steps) if command.steps else None,
        confidential=command.confidential,
        language=command.language,
        metadata=command.metadata,
    )


def _submitted(document: Document, command: SubmitDocument, page_count: int) -> DocumentSubmitted:
    return DocumentSubmitted(
        correlation_id=document.document_id,
        org=document.org,
        source=document.source,
        external_ref=document.external_ref,
        title=document.title,
        flow=document.flow,
        steps=command.steps,
        submitted_by=document.submitted_by,
        confidential=document.confidential,
        filename=document.filename,
        language=document.language,
        metadata=command.metadata,
        pdf_sha256=document.pdf_sha256,
        pdf_size=len(command.pdf),
        page_count=page_count,
        due_at=command.due_at,
    )


async def _reject(
    store: IntakeStore,
    *,
    org: str,
    source: str,
    external_ref: str | None,
    refusal: CodedError,
    original: bytes,
    document_id: UUID | None = None,
    announce: bool = True,
) -> Rejection:
    """Answer the source, keep the original for operators, and (``announce``) tell the audit log."""
    code, reason = refusal.code, refusal.reason
    rejection = Rejection(uuid4(), org, source, external_ref, code, reason, document_id)
    await store.insert_rejection(rejection)
    await store.publish(
        Outcome(source=source, external_ref=external_ref, document_id=document_id, status="rejected", code=code, reason=reason)
    )
    if announce:
        await store.publish(
            DocumentRejected(
                correlation_id=document_id or rejection.id, org=org, source=source, external_ref=external_ref, code=code, reason=reason
            )
        )
    routing_key = f"submit.{source}"
    await store.keep_refused(rejection.id, original, {"x-paraaf-code": code, "x-paraaf-reason": reason, "x-paraaf-routing-key": routing_key})
    structlog.get_logger().info("submission rejected", source=source, external_ref=external_ref, code=code, reason=reason)
    return rejection


async def on_document_accepted(event: DocumentAccepted, store: IntakeStore) -> None:
    document = await store.set_status(event.document_id, "accepted")
    if document is not None:
        await store.publish(_outcome(document, "accepted"))


async def on_document_rejected(event: DocumentRejected, store: IntakeStore) -> None:
    """The router refused a document we accepted (unknown flow or submitter)."""
    document = await store.set_status(event.document_id, "rejected", event.reason)
    if document is None:
        return  # a rejection intake itself published: already answered
    original = _rebuild_submission(document, await store.pdf(document.pdf_sha256))
    await _reject(
        store,
        org=document.org,
        source=document.source,
        external_ref=document.external_ref,
        refusal=CodedError(event.code, event.reason),
        original=original,
        document_id=event.document_id,
        announce=False,
    )


async def on_document_completed(event: DocumentCompleted, store: IntakeStore) -> None:
    pdf, document = await store.complete(event.document_id, event.org, event.pdf_sha256)
    if pdf is None:
        # Only a PDF intake accepted, or a version the signer made of it, goes back to a source.
        raise PermanentError(f"document.completed names PDF {event.pdf_sha256}, which is no version of document {event.document_id}")
    if document is None:
        return
    outcome = _outcome(document, "completed").model_copy(update={"pdf": base64.b64encode(pdf).decode(), "signatures": event.signatures})
    await store.publish(outcome)


async def on_document_declined(event: DocumentDeclined, store: IntakeStore) -> None:
    await _ended(store, event.document_id, "declined", f"declined by {event.declined_by.name}: {event.reason}")


async def on_document_withdrawn(event: DocumentWithdrawn, store: IntakeStore) -> None:
    await _ended(store, event.document_id, "withdrawn", f"withdrawn by {event.withdrawn_by}: {event.reason}")


async def _ended(store: IntakeStore, document_id: UUID, status: str, reason: str) -> None:
    document = await store.set_status(document_id, status, reason)
    if document is not None:
        await store.publish(_outcome(document, status, reason))


def _outcome(document: Document, status: str, reason: str | None = None) -> Outcome:
    return Outcome(
        source=document.source, external_ref=document.external_ref, document_id=document.document_id, status=status, reason=reason
    )


def _rebuild_submission(document: Document, pdf: bytes) -> bytes:
    fields = {
        "source": document.source, "external_ref": document.external_ref, "title": document.title, "flow": document.flow,
        "steps": [s.model_dump() for s in document.steps] if document.steps else None, "submitted_by": document.submitted_by,
        "confidential": document.confidential, "filename": document.filename, "language": document.language,
        "metadata": document.metadata or {}, "org": document.org,
    }
    return json.dumps({**fields, "pdf": base64.b64encode(pdf).decode()}).encode()


# A source's requests about its own documents (esign.intake, withdraw.<source> and status.<source>).


def _asking(delivery: Delivery) -> str:
    """The source a request came from: its routing key's, which RabbitMQ let only that source's user publish."""
    return delivery.routing_key.partition(".")[2]


async def status_of(store: IntakeStore, source: str, external_ref: str) -> Document | None:
    """The document ``source`` submitted under ``external_ref``, in the one org it submits for; None when none."""
    policy = await store.source_policy(source, lock_ref=external_ref)
    return await store.find_document(policy.org, source, external_ref, locked=True) if policy else None


def _report(source: str, external_ref: str | None, document: Document | None, delivery: Delivery, **fields: object) -> StatusReport:
    found = {"document_id": document.document_id, "status": document.status, "reason": document.reason} if document else {}
    values = {"document_id": None, "status": "unknown", **found, **fields}
    return StatusReport(source=source, external_ref=external_ref, in_reply_to=delivery.message_id, **values)  # type: ignore[arg-type]


def _not_own(source: str, named: str) -> CodedError:
    return CodedError(
        "source_mismatch", f"the message names source `{named}` but came from source `{source}`; a source asks only about its own documents"
    )


async def on_query_status(query: QueryStatus, store: IntakeStore, delivery: Delivery) -> None:
    """Answer where a source's document stands, in its own outcomes (``<source>.status``)."""
    source = _asking(delivery)
    if query.source != source:
        refusal = _not_own(source, query.source)
        await store.publish(_report(source, query.external_ref, None, delivery, code=refusal.code, reason=refusal.reason))
        return
    await store.publish(_report(source, query.external_ref, await status_of(store, source, query.external_ref), delivery))


async def on_withdraw_submission(command: WithdrawSubmission, store: IntakeStore, delivery: Delivery) -> None:
    """Ask the router to stop a source's own document; answer at once (``<source>.status``) when it cannot be."""
    source = _asking(delivery)
    document = await status_of(store, source, command.external_ref) if command.source == source else None
    try:
        _check_withdrawable(source, command, document)
    except CodedError as refusal:
        await store.publish(_report(source, command.external_ref, document, delivery, query="withdraw", code=refusal.code, reason=refusal.reason))
        structlog.get_logger().info("withdrawal refused", source=source, external_ref=command.external_ref, code=refusal.code)
        return
    assert document is not None
    await store.publish(
        WithdrawDocument(correlation_id=document.document_id, org=document.org, withdrawn_by=f"source:{source}", reason=command.reason)
    )
    structlog.get_logger().info("withdrawal asked", source=source, document_id=str(document.document_id))


def _check_withdrawable(source: str, command: WithdrawSubmission, document: Document | None) -> None:
    if command.source != source:
        raise _not_own(source, command.source)
    if document is None:
        raise CodedError("unknown_document", f"source `{source}` submitted no document with external_ref `{command.external_ref}`")
    if document.status == "submitted":
        raise CodedError("not_yet_accepted", "the document is not yet accepted for signing; withdraw it again in a moment")
    if document.status != "accepted":
        raise CodedError("ended", f"the document is already {document.status}; only a document being signed can be withdrawn")


async def on_unreadable_request(consumer: Consumer, msg: RabbitMessage, why: str) -> None:
    """A source's malformed request is answered with what is wrong; anyone else's is parked, unanswered."""
    delivery = delivery_of(msg)
    if why == UNTRUSTED:
        await consumer.park(msg, why)
        return
    external_ref = external_ref_of(Submission(delivery.routing_key, delivery.body))
    query = "withdraw" if delivery.routing_key.startswith("withdraw.") else "status"
    report = _report(_asking(delivery), external_ref, None, delivery, query=query, code="invalid_message", reason=_why(why))
    await consumer.once(msg, submission_key(None, msg), lambda store: store.publish(report))


def _why(why: str) -> str:
    """A consumer's reason in a source's words: pydantic's field errors, without their documentation links."""
    lines = [line for line in why.removeprefix("malformed: ").splitlines() if "errors.pydantic.dev" not in line]
    return "the message is not a valid request: " + " ".join(line.strip() for line in lines)[:1000]
