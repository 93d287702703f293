"""The router's handlers and use cases: thin glue between events, the store
and the rules in domain.py. Each runs inside the caller's transaction."""

from datetime import datetime
from uuid import UUID, uuid4

import asyncpg
import structlog

from services.router import store
from services.router.directory import DirectoryCache
from services.router.domain import (
    Assignment,
    Directory,
    RoutingError,
    advance,
    check_steps,
    plan_step,
    planned_signatures,
    reassign,
)
from shared.clock import Clock
from shared.events import (
    Cause,
    DocumentAccepted,
    DocumentCompleted,
    DocumentDeclined,
    DocumentRejected,
    DocumentSubmitted,
    DocumentWithdrawn,
    Event,
    PersonRef,
    RoutingUnresolved,
    SignatureCancelled,
    SignatureDeclined,
    SignatureReassigned,
    SignatureRecord,
    SignatureRequested,
    Signed,
    StepSpec,
)
from shared.messaging import Outbox

__all__ = [
    "NotWithdrawable",
    "move_work_of",
    "on_document_submitted",
    "on_signature_declined",
    "on_signed",
    "withdraw",
]


async def on_document_submitted(
    event: DocumentSubmitted,
    conn: asyncpg.Connection,
    *,
    outbox: Outbox,
    directories: DirectoryCache,
    clock: Clock,
) -> None:
    directory = await directories.get(conn, event.org)
    try:
        flow = None
        if event.flow is not None:
            flow = await store.find_flow(conn, event.org, event.flow)
            if flow is None:
                raise RoutingError("unknown_flow", f"flow `{event.flow}` does not exist; load it with `paraaf flows load`")
        steps = list(flow.steps) if flow else list(event.steps or [])
        submitter = directory.people.get(event.submitted_by)
        if submitter is None:
            raise RoutingError("unknown_submitter", f"submitter `{event.submitted_by}` is not in the directory")
        check_steps(steps, directory)
    except RoutingError as refusal:
        await outbox.add(
            conn,
            DocumentRejected.caused_by(
                event, source=event.source, external_ref=event.external_ref, code=refusal.code, reason=refusal.reason
            ),
        )
        structlog.get_logger().info("document refused by router", code=refusal.code, reason=refusal.reason)
        return
    await store.insert_instance(
        conn,
        document_id=event.document_id,
        org=event.org,
        flow=flow,
        title=event.title,
        filename=event.filename,
        submitted_by=store.person_ref(submitter),
        confidential=event.confidential or (flow.confidential if flow else False),
        steps=steps,
        pdf_sha256=event.pdf_sha256,
    )
    await outbox.add(
        conn,
        DocumentAccepted.caused_by(
            event,
            flow=event.flow,
            step_count=len(steps),
            department=flow.department if flow else None,
            group=flow.group if flow else None,
        ),
    )
    instance = await store.lock_instance(conn, event.document_id)
    await _start_step(conn, instance, 1, directory, clock(), cause=event, outbox=outbox)


def _refs(assignment: Assignment) -> tuple[PersonRef, PersonRef | None]:
    signer = store.person_ref(assignment.person, assignment.title)
    represented = store.person_ref(assignment.on_behalf_of, assignment.title) if assignment.on_behalf_of else None
    return signer, represented


async def _request(
    conn: asyncpg.Connection,
    document: asyncpg.Record,
    *,
    step: int,
    step_count: int,
    action: str,
    slot: str,
    assignment: Assignment,
    cause: Event | Cause,
    outbox: Outbox,
    replaces: UUID | None = None,
) -> UUID:
    """Open one request and announce it (and alert an operator when nobody could stand in)."""
    request_id = uuid4()
    signer, represented = _refs(assignment)
    await store.insert_request(
        conn,
        request_id=request_id,
        document_id=document["document_id"],
        org=document["org"],
        step=step,
        slot=slot,
        person=signer,
        on_behalf_of=represented,
        reason=assignment.reason,
        action=action,
        replaces=replaces,
    )
    await outbox.add(
        conn,
        SignatureRequested.caused_by(
            cause,
            request_id=request_id,
            step=step,
            step_count=step_count,
            action=action,
            signer=signer,
            on_behalf_of=represented,
            reason=assignment.reason,
            title=document["title"],
            filename=document["filename"],
            submitted_by=PersonRef.model_validate(document["submitted_by"]),
            pdf_sha256=document["pdf_sha256"],
            confidential=document["confidential"],
            replaces=replaces,
            signature_count=planned_signatures([StepSpec.model_validate(s) for s in document["steps"]]),
        ),
    )
    if assignment.unresolved:
        await outbox.add(
            conn, RoutingUnresolved.caused_by(cause, request_id=request_id, signer=signer, reason=assignment.reason or "")
        )
    return request_id


async def _start_step(
    conn: asyncpg.Connection,
    instance: asyncpg.Record,
    number: int,
    directory: Directory,
    now: datetime,
    *,
    cause: Event,
    outbox: Outbox,
) -> None:
    steps = [StepSpec.model_validate(s) for s in instance["steps"]]
    step = steps[number - 1]
    await store.update_instance(conn, instance["document_id"], current_step=number)
    for assignment in plan_step(step, directory, now):
        await _request(
            conn,
            instance,
            step=number,
            step_count=len(steps),
            action=step.action,
            slot=assignment.slot,
            assignment=assignment,
            cause=cause,
            outbox=outbox,
        )


async def on_signed(
    event: Signed,
    conn: asyncpg.Connection,
    *,
    outbox: Outbox,
    directories: DirectoryCache,
    clock: Clock,
) -> None:
    log = structlog.get_logger()
    instance = await store.lock_instance(conn, event.document_id)
    request = await store.lock_request(conn, event.request_id)
    if instance is None or request is None:
        log.warning("signature for an unknown request ignored", request_id=str(event.request_id))
        return
    signature = SignatureRecord(
        request_id=event.request_id,
        step=event.step,
        action=event.action,
        signer=event.signer,
        on_behalf_of=event.on_behalf_of,
        signed_at=event.signed_at,
        field_name=event.field_name,
    )
    # A signature in the PDF is a fact even when its request was no longer needed.
    await store.record_signature(conn, event.document_id, signature, event.pdf_sha256, event.revision)
    if instance["status"] == "active" and request["status"] == "reassigned":
        # Signed through the old link before the move reached the signer: the signature
        # counts, and the substitute's request for the same entry is no longer needed.
        replacement = [
            r["request_id"]
            for r in await store.step_requests(conn, event.document_id, request["step"])
            if r["slot"] == request["slot"] and r["status"] == "pending"
        ]
        await _cancel(conn, replacement, f"{event.signer.name} signed before the request moved", cause=event, outbox=outbox)
    elif request["status"] != "pending" or instance["status"] != "active":
        log.info("late signature recorded; flow unchanged", request_status=request["status"])
        return
    await store.set_request_status(conn, [event.request_id], "signed")
    steps = [StepSpec.model_validate(s) for s in instance["steps"]]
    step = steps[request["step"] - 1]
    requests = [r for r in await store.step_requests(conn, event.document_id, request["step"]) if r["status"] != "reassigned"]
    signed = [r["slot"] for r in requests if r["status"] == "signed"]
    progress = advance(request["step"], len(steps), step.mode, [r["slot"] for r in requests], signed)
    if progress == "wait":
        return
    leftover = [r["request_id"] for r in requests if r["status"] == "pending"]
    await _cancel(conn, leftover, "the step was completed by another signer", cause=event, outbox=outbox)
    instance = await store.lock_instance(conn, event.document_id)
    if progress == "next":
        directory = await directories.get(conn, instance["org"])
        await _start_step(conn, instance, request["step"] + 1, directory, clock(), cause=event, outbox=outbox)
        return
    await store.update_instance(conn, event.document_id, status="completed")
    await outbox.add(
        conn,
        DocumentCompleted.caused_by(
            event,
            pdf_sha256=instance["pdf_sha256"],
            signatures=[SignatureRecord.model_validate(s) for s in instance["signatures"]],
            title=instance["title"],
            submitted_by=PersonRef.model_validate(instance["submitted_by"]),
        ),
    )
    log.info("document completed", signatures=len(instance["signatures"]))


async def on_signature_declined(event: SignatureDeclined, conn: asyncpg.Connection, *, outbox: Outbox) -> None:
    instance = await store.lock_instance(conn, event.document_id)
    request = await store.lock_request(conn, event.request_id)
    if instance is None or request is None or request["status"] != "pending" or instance["status"] != "active":
        return
    await store.set_request_status(conn, [event.request_id], "declined")
    leftover = [r["request_id"] for r in await store.pending_requests(conn, event.document_id)]
    await _cancel(conn, leftover, f"{event.signer.name} declined the document", cause=event, outbox=outbox)
    await store.update_instance(conn, event.document_id, status="declined")
    await outbox.add(
        conn,
        DocumentDeclined.caused_by(
            event,
            declined_by=event.signer,
            reason=event.reason,
            title=instance["title"],
            submitted_by=PersonRef.model_validate(instance["submitted_by"]),
        ),
    )


class NotWithdrawable(Exception):
    """The document cannot be withdrawn (unknown, already ended, or asked by the wrong person)."""

    def __init__(self, reason: str, status: int = 409) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


async def withdraw(
    conn: asyncpg.Connection, document_id: UUID, *, org: str, by: str, reason: str, outbox: Outbox
) -> None:
    """The submitter (their person id) or an operator (``operator:<name>``) of ``org`` stops a document."""
    instance = await store.lock_instance(conn, document_id)
    if instance is None or instance["org"] != org:
        raise NotWithdrawable(f"there is no document {document_id}", status=404)
    submitter = PersonRef.model_validate(instance["submitted_by"])
    if by != submitter.id and not by.startswith("operator:"):
        raise NotWithdrawable(f"only the submitter ({submitter.id}) or an operator can withdraw", status=403)
    if instance["status"] != "active":
        raise NotWithdrawable(f"the document is already {instance['status']}")
    pending = [r["request_id"] for r in await store.pending_requests(conn, document_id)]
    await store.set_request_status(conn, pending, "cancelled")
    await store.update_instance(conn, document_id, status="withdrawn")
    await outbox.add(
        conn, DocumentWithdrawn(correlation_id=document_id, org=instance["org"], withdrawn_by=by, reason=reason)
    )


async def move_work_of(
    conn: asyncpg.Connection,
    org: str,
    person_id: str,
    directory: Directory,
    now: datetime,
    *,
    absence_id: UUID,
    outbox: Outbox,
) -> int:
    """A person's absence has started: move each of their open requests to the first available substitute.

    Returns how many requests moved; those nobody can take stay with the
    person, and an operator is alerted.
    """
    moved = 0
    for request in await store.lock_pending_of(conn, org, person_id):
        represented = PersonRef.model_validate(request["on_behalf_of"]) if request["on_behalf_of"] else None
        current = PersonRef.model_validate(request["person"])
        taken = {
            r["person_id"]
            for r in await store.step_requests(conn, request["document_id"], request["step"])
            if r["status"] in ("pending", "signed") and r["request_id"] != request["request_id"]
        }
        cause = Cause(event_id=absence_id, correlation_id=request["document_id"], org=org)
        assignment = reassign(person_id, represented.id if represented else None, current.title, directory, now, taken)
        if assignment is None:
            await outbox.add(
                conn,
                RoutingUnresolved.caused_by(
                    cause, request_id=request["request_id"], signer=current, reason="absent; no substitute is available"
                ),
            )
            continue
        await store.set_request_status(conn, [request["request_id"]], "reassigned")
        new_request_id = await _request(
            conn,
            request,
            step=request["step"],
            step_count=request["step_count"],
            action=request["action"],
            slot=request["slot"],
            assignment=assignment,
            cause=cause,
            outbox=outbox,
            replaces=request["request_id"],
        )
        await outbox.add(
            conn,
            SignatureReassigned.caused_by(
                cause,
                request_id=request["request_id"],
                new_request_id=new_request_id,
                from_person=current,
                to_person=store.person_ref(assignment.person, assignment.title),
                reason=f"{current.name} is absent",
                title=request["title"],
            ),
        )
        moved += 1
    return moved


async def _cancel(conn: asyncpg.Connection, request_ids: list, reason: str, *, cause: Event, outbox: Outbox) -> None:
    if not request_ids:
        return
    await store.set_request_status(conn, request_ids, "cancelled")
    for request_id in request_ids:
        await outbox.add(conn, SignatureCancelled.caused_by(cause, request_id=request_id, reason=reason))
