"""Intake's handlers: a submission in, and a document's end back out to its source.

Every refusal is answered: a ``<source>.rejected`` outcome whose reason says
what was wrong, a ``document.rejected`` event for the audit log, and the
original message kept in queue ``intake.rejected``.
"""

import base64
import json
import re
from dataclasses import dataclass
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import structlog
from pydantic import ValidationError

from services.intake import store
from services.intake.domain import Forbidden, PdfRefused, authorise, inspect_pdf, safe_filename
from shared.blobs import get_blob, put_blob, register_version, version_digests
from shared.contract import Outcome, SubmitDocument, describe_validation_error
from shared.events import (
    DocumentAccepted,
    DocumentCompleted,
    DocumentDeclined,
    DocumentRejected,
    DocumentSubmitted,
    DocumentWithdrawn,
)
from shared.messaging import Outbox, PermanentError
from shared.topology import DLX, REJECTED_QUEUE

__all__ = [
    "Examined",
    "Submission",
    "examine",
    "on_document_accepted",
    "on_document_completed",
    "on_document_declined",
    "on_document_rejected",
    "on_document_withdrawn",
    "on_submission",
]

_SOURCE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclass(frozen=True)
class Submission:
    """A message as it arrived on ``esign.intake``: nothing in its body is trusted yet.

    ``publisher`` is the source whose broker user published it (RabbitMQ checked the
    ``user_id``); None when the message did not carry one.
    """

    routing_key: str
    body: bytes
    publisher: str | None = None


class Refused(Exception):
    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def _source_of(submission: Submission, data: Any) -> str:
    named = data.get("source") if isinstance(data, dict) else None
    from_key = submission.routing_key.removeprefix("submit.")
    for candidate in (submission.publisher, from_key, named):
        if isinstance(candidate, str) and _SOURCE.match(candidate):
            return candidate
    return "unknown"


def _parse(submission: Submission) -> SubmitDocument:
    if submission.publisher is None:
        source = submission.routing_key.removeprefix("submit.")
        raise Refused(
            "missing_user_id",
            f"the message carries no user_id; publish with the AMQP property user_id set to your broker user"
            f" (the user in your AMQP URL, e.g. `paraaf.source.{source}`): RabbitMQ checks it, and Paraaf accepts"
            " a submission only from the source it names",
        )
    try:
        data = json.loads(submission.body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise Refused("invalid_json", f"the message is not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise Refused("invalid_json", "the message must be a JSON object")
    try:
        command = SubmitDocument.model_validate(data)
    except ValidationError as exc:
        raise Refused("invalid_message", describe_validation_error(exc)) from None
    if submission.routing_key != f"submit.{command.source}" or command.source != submission.publisher:
        raise Refused(
            "source_mismatch",
            f"the message names source `{command.source}` but was published by `{submission.publisher}`"
            f" with routing key `{submission.routing_key}`; a source submits only under its own name"
            f" (`\"source\": \"{submission.publisher}\"`, routing key `submit.{submission.publisher}`)",
        )
    return command


@dataclass(frozen=True)
class Examined:
    """A submission after its (CPU-bound) checks: either a command with its PDF's facts, or a refusal."""

    submission: Submission
    command: SubmitDocument | None = None
    page_count: int = 0
    refusal: Refused | PdfRefused | None = None


def examine(submission: Submission, *, max_pdf_bytes: int) -> Examined:
    """Parse and check a submission; pure, so the consumer can run it off the event loop."""
    try:
        command = _parse(submission)
        info = inspect_pdf(command.pdf, max_bytes=max_pdf_bytes)
    except (Refused, PdfRefused) as refusal:
        return Examined(submission, refusal=refusal)
    return Examined(submission, command=command, page_count=info.page_count)


async def on_submission(examined: Examined, conn: asyncpg.Connection, *, outbox: Outbox) -> None:
    submission = examined.submission
    data = _loads_or_none(submission.body)
    source = _source_of(submission, data)
    policy = await store.source_policy(conn, source)
    refusal = examined.refusal
    org = policy.org if policy else "default"
    if refusal is None and policy is None:
        refusal = Refused("unknown_source", f"source `{source}` is not registered; an administrator adds it with `paraaf sources add`")
    elif refusal is None:
        command = examined.command
        try:
            org = authorise(
                policy, org=command.org, flow=command.flow, has_steps=command.steps is not None, submitted_by=command.submitted_by
            )
        except Forbidden as forbidden:
            refusal = forbidden
    if refusal is not None:
        await _reject(
            conn,
            outbox=outbox,
            org=org,
            source=source,
            external_ref=_external_ref_of(data),
            code=refusal.code,
            reason=refusal.reason,
            original=submission.body,
            routing_key=submission.routing_key,
        )
        return
    await _accept(conn, examined.command, examined.page_count, org=org, outbox=outbox, original=submission)


async def _accept(
    conn: asyncpg.Connection, command: SubmitDocument, page_count: int, *, org: str, outbox: Outbox, original: Submission
) -> None:
    log = structlog.get_logger()
    digest = await put_blob(conn, command.pdf)
    existing = await store.find_document(conn, org, command.source, command.external_ref)
    if existing is not None:
        if existing["pdf_sha256"] == digest:
            log.info("resubmission ignored", document_id=str(existing["document_id"]))
            return
        await _reject(
            conn,
            outbox=outbox,
            org=org,
            source=command.source,
            external_ref=command.external_ref,
            code="duplicate_ref",
            reason=f"external_ref `{command.external_ref}` was already submitted with another PDF"
            f" (document {existing['document_id']}); use a new external_ref",
            original=original.body,
            routing_key=original.routing_key,
        )
        return
    document_id = uuid4()
    filename = safe_filename(command.filename)
    await store.insert_document(conn, document_id, command, digest, org=org, filename=filename)
    await register_version(conn, document_id, 0, org, digest)
    structlog.contextvars.bind_contextvars(document_id=str(document_id))
    await outbox.add(
        conn,
        DocumentSubmitted(
            correlation_id=document_id,
            org=org,
            source=command.source,
            external_ref=command.external_ref,
            title=command.title,
            flow=command.flow,
            steps=command.steps,
            submitted_by=command.submitted_by,
            confidential=command.confidential,
            filename=filename,
            language=command.language,
            metadata=command.metadata,
            pdf_sha256=digest,
            pdf_size=len(command.pdf),
            page_count=page_count,
        ),
    )
    log.info("document submitted", source=command.source, external_ref=command.external_ref)


def _loads_or_none(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None


def _external_ref_of(data: Any) -> str | None:
    ref = data.get("external_ref") if isinstance(data, dict) else None
    return ref if isinstance(ref, str) and ref else None


async def _reject(
    conn: asyncpg.Connection,
    *,
    outbox: Outbox,
    org: str,
    source: str,
    external_ref: str | None,
    code: str,
    reason: str,
    original: bytes,
    routing_key: str,
    document_id: UUID | None = None,
    announce: bool = True,
) -> None:
    """Answer the source, keep the original for operators, and (``announce``) tell the audit log."""
    rejection_id = uuid4()
    await store.insert_rejection(conn, rejection_id, org, source, external_ref, document_id, code, reason)
    await outbox.add(
        conn,
        Outcome(
            source=source, external_ref=external_ref, document_id=document_id, status="rejected", code=code, reason=reason
        ),
    )
    if announce:
        await outbox.add(
            conn,
            DocumentRejected(
                correlation_id=document_id or rejection_id,
                org=org,
                source=source,
                external_ref=external_ref,
                code=code,
                reason=reason,
            ),
        )
    await outbox.add_raw(
        conn,
        DLX.name,
        REJECTED_QUEUE,
        rejection_id,
        original,
        headers={"x-paraaf-code": code, "x-paraaf-reason": reason, "x-paraaf-routing-key": routing_key},
    )
    structlog.get_logger().info("submission rejected", source=source, external_ref=external_ref, code=code, reason=reason)


async def on_document_accepted(event: DocumentAccepted, conn: asyncpg.Connection, *, outbox: Outbox) -> None:
    document = await store.set_status(conn, event.document_id, "accepted")
    if document is not None:
        await outbox.add(conn, _outcome(document, "accepted"))


async def on_document_rejected(event: DocumentRejected, conn: asyncpg.Connection, *, outbox: Outbox) -> None:
    """The router refused a document we accepted (unknown flow or submitter)."""
    document = await store.set_status(conn, event.document_id, "rejected", event.reason)
    if document is None:
        return  # a rejection intake itself published: already answered
    pdf = await get_blob(conn, document["pdf_sha256"])
    await _reject(
        conn,
        outbox=outbox,
        org=document["org"],
        source=document["source"],
        external_ref=document["external_ref"],
        code=event.code,
        reason=event.reason,
        original=_rebuild_submission(document, pdf),
        routing_key=f"submit.{document['source']}",
        document_id=event.document_id,
        announce=False,
    )


async def on_document_completed(event: DocumentCompleted, conn: asyncpg.Connection, *, outbox: Outbox) -> None:
    if event.pdf_sha256 not in await version_digests(conn, event.document_id, event.org):
        # Only a PDF intake accepted, or a version the signer made of it, goes back to a source.
        raise PermanentError(f"document.completed names PDF {event.pdf_sha256}, which is no version of document {event.document_id}")
    document = await store.set_status(conn, event.document_id, "completed", pdf_sha256=event.pdf_sha256)
    if document is None:
        return
    pdf = await get_blob(conn, event.pdf_sha256)
    outcome = _outcome(document, "completed").model_copy(
        update={"pdf": base64.b64encode(pdf).decode(), "signatures": event.signatures}
    )
    await outbox.add(conn, outcome)


async def on_document_declined(event: DocumentDeclined, conn: asyncpg.Connection, *, outbox: Outbox) -> None:
    reason = f"declined by {event.declined_by.name}: {event.reason}"
    document = await store.set_status(conn, event.document_id, "declined", reason)
    if document is not None:
        await outbox.add(conn, _outcome(document, "declined", reason))


async def on_document_withdrawn(event: DocumentWithdrawn, conn: asyncpg.Connection, *, outbox: Outbox) -> None:
    reason = f"withdrawn by {event.withdrawn_by}: {event.reason}"
    document = await store.set_status(conn, event.document_id, "withdrawn", reason)
    if document is not None:
        await outbox.add(conn, _outcome(document, "withdrawn", reason))


def _outcome(document: asyncpg.Record, status: str, reason: str | None = None) -> Outcome:
    return Outcome(
        source=document["source"],
        external_ref=document["external_ref"],
        document_id=document["document_id"],
        status=status,
        reason=reason,
    )


def _rebuild_submission(document: asyncpg.Record, pdf: bytes) -> bytes:
    fields = {
        key: document[key]
        for key in ("source", "external_ref", "title", "flow", "steps", "submitted_by", "confidential", "filename", "language", "metadata", "org")
    }
    return json.dumps({**fields, "pdf": base64.b64encode(pdf).decode()}).encode()
