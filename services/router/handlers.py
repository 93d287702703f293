"""The router's handlers: thin glue between events, the store and the rules in domain.py."""

from collections.abc import Callable
from datetime import datetime
from uuid import uuid4

import asyncpg
import structlog

from services.router import store
from services.router.domain import Directory, RoutingError, check_steps, plan_step, step_outcome
from shared.events import (
    DocumentAccepted,
    DocumentCompleted,
    DocumentDeclined,
    DocumentRejected,
    DocumentSubmitted,
    Event,
    PersonRef,
    SignatureCancelled,
    SignatureDeclined,
    SignatureRecord,
    SignatureRequested,
    Signed,
    StepSpec,
)
from shared.messaging import Outbox

__all__ = ["on_document_submitted", "on_signature_declined", "on_signed"]

Clock = Callable[[], datetime]


async def on_document_submitted(
    event: DocumentSubmitted,
    conn: asyncpg.Connection,
    *,
    outbox: Outbox,
    directories: store.DirectoryCache,
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
    submitted_by = PersonRef.model_validate(instance["submitted_by"])
    await store.update_instance(conn, instance["document_id"], current_step=number)
    for assignment in plan_step(step, directory, now):
        request_id = uuid4()
        signer = store.person_ref(assignment.person, assignment.title)
        on_behalf_of = (
            store.person_ref(assignment.on_behalf_of, assignment.title) if assignment.on_behalf_of else None
        )
        await store.insert_request(
            conn,
            request_id=request_id,
            document_id=instance["document_id"],
            org=instance["org"],
            step=number,
            slot=assignment.slot,
            person=signer,
            on_behalf_of=on_behalf_of,
            reason=assignment.reason,
            action=step.action,
        )
        await outbox.add(
            conn,
            SignatureRequested.caused_by(
                cause,
                request_id=request_id,
                step=number,
                step_count=len(steps),
                action=step.action,
                signer=signer,
                on_behalf_of=on_behalf_of,
                reason=assignment.reason,
                title=instance["title"],
                filename=instance["filename"],
                submitted_by=submitted_by,
                pdf_sha256=instance["pdf_sha256"],
                confidential=instance["confidential"],
            ),
        )


async def on_signed(
    event: Signed,
    conn: asyncpg.Connection,
    *,
    outbox: Outbox,
    directories: store.DirectoryCache,
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
    if request["status"] != "pending" or instance["status"] != "active":
        log.info("late signature recorded; flow unchanged", request_status=request["status"])
        return
    await store.set_request_status(conn, [event.request_id], "signed")
    steps = [StepSpec.model_validate(s) for s in instance["steps"]]
    step = steps[request["step"] - 1]
    requests = await store.step_requests(conn, event.document_id, request["step"])
    signed = [r["slot"] for r in requests if r["status"] == "signed"]
    if step_outcome(step.mode, [r["slot"] for r in requests], signed) == "waiting":
        return
    leftover = [r["request_id"] for r in requests if r["status"] == "pending"]
    await _cancel(conn, leftover, "the step was completed by another signer", cause=event, outbox=outbox)
    instance = await store.lock_instance(conn, event.document_id)
    if request["step"] < len(steps):
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


async def _cancel(conn: asyncpg.Connection, request_ids: list, reason: str, *, cause: Event, outbox: Outbox) -> None:
    if not request_ids:
        return
    await store.set_request_status(conn, request_ids, "cancelled")
    for request_id in request_ids:
        await outbox.add(conn, SignatureCancelled.caused_by(cause, request_id=request_id, reason=reason))
