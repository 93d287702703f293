"""The router's handlers and use cases: load from the store, ask domain.py what
to do, write it back and announce it. Each runs in the caller's transaction,
on a :class:`RouterStore`."""

from datetime import datetime
from uuid import UUID, uuid4

import structlog

from services.router.directory import DirectoryCache, UnknownPerson, add_absence
from services.router.domain import (
    Assignment,
    Directory,
    FlowDefinition,
    Instance,
    Request,
    check_steps,
    check_withdrawal,
    operator_assignment,
    plan_step,
    planned_signatures,
    reassign,
    shield_of,
    signature_effect,
    with_signature,
)
from services.router.store import RouterStore, person_ref
from shared.clock import Clock
from shared.contract import ReassignRequest, RegisterAbsence, WithdrawDocument
from shared.delivery import Delivery
from shared.errors import CodedError
from shared.events import (
    Cause,
    DocumentAccepted,
    DocumentCompleted,
    DocumentDeclined,
    DocumentRejected,
    DocumentSubmitted,
    DocumentWithdrawn,
    Event,
    RoutingFailed,
    SignatureCancelled,
    SignatureDeclined,
    SignatureReassigned,
    SignatureRecord,
    SignatureRequested,
    Signed,
)
from shared.visibility import OPERATOR_ROLE

__all__ = [
    "move_work_of",
    "on_document_submitted",
    "on_reassign_request",
    "on_register_absence",
    "on_signature_declined",
    "on_signed",
    "on_withdraw_document",
    "reassign_by_operator",
    "withdraw",
]


async def on_document_submitted(
    event: DocumentSubmitted, store: RouterStore, *, directories: DirectoryCache, clock: Clock
) -> None:
    if event.flow is None and (known := directories.known(event.org)) and await _started_on(store, event, *known, clock=clock):
        return
    flow = await store.flow(event.org, event.flow) if event.flow is not None else None  # first: it brings the directory's version
    directory = await directories.get(store, event.org)
    try:
        instance = _new_instance(event, flow, directory)
    except CodedError as refusal:
        await store.publish(
            DocumentRejected.caused_by(
                event, source=event.source, external_ref=event.external_ref, code=refusal.code, reason=refusal.reason
            )
        )
        structlog.get_logger().info("document refused by router", code=refusal.code, reason=refusal.reason)
        return
    await store.publish(_accepted(event, instance))
    await _start_step(store, instance, 1, directory, clock(), cause=event, new=True)


def _accepted(event: DocumentSubmitted, instance: Instance) -> DocumentAccepted:
    return DocumentAccepted.caused_by(
        event, flow=event.flow, step_count=instance.step_count, department=instance.department, group=instance.group
    )


async def _started_on(store: RouterStore, event: DocumentSubmitted, version: int, directory: Directory, *, clock: Clock) -> bool:
    """An ad-hoc document accepted and its first step opened on the directory as last read, with no statement to ask
    its version first: the one that stores the document does so only if the directory still is at ``version``. False,
    with nothing done, when it moved on or the document would be refused (refusals are decided on a fresh read)."""
    try:
        instance = _new_instance(event, None, directory)
    except CodedError:
        return False
    opened = _plan(instance, 1, directory, clock())
    if not await store.start_document(instance, [request for request, _ in opened], directory_version=version):
        return False
    await store.publish(_accepted(event, instance))
    await _announce_step(store, instance, opened, event)
    return True


def _new_instance(event: DocumentSubmitted, flow: FlowDefinition | None, directory: Directory) -> Instance:
    """The document as the router will follow it, or CodedError saying why it cannot."""
    if event.flow is not None and flow is None:
        raise CodedError("unknown_flow", f"flow `{event.flow}` does not exist; load it with `paraaf flows load`")
    submitter = directory.people.get(event.submitted_by)
    if submitter is None:
        raise CodedError("unknown_submitter", f"submitter `{event.submitted_by}` is not in the directory")
    steps = tuple(flow.steps if flow else event.steps or ())
    check_steps(steps, directory)
    return Instance(
        document_id=event.document_id,
        org=event.org,
        title=event.title,
        filename=event.filename,
        submitted_by=person_ref(submitter),
        confidential=event.confidential or (flow.confidential if flow else False),
        steps=steps,
        pdf_sha256=event.pdf_sha256,
        flow_key=flow.key if flow else None,
        department=flow.department if flow else None,
        group=flow.group if flow else None,
        due_at=event.due_at,
    )


async def _ask(
    store: RouterStore,
    instance: Instance,
    step: int,
    assignment: Assignment,
    *,
    cause: Event | Cause,
    replaces: UUID | None = None,
) -> Request:
    """Open one request and announce it (and alert an operator when nobody could stand in)."""
    request = _request(instance, step, assignment, replaces)
    await store.insert_request(request)
    await _announce(store, instance, request, assignment, cause)
    return request


def _request(instance: Instance, step: int, assignment: Assignment, replaces: UUID | None = None) -> Request:
    return Request(
        request_id=uuid4(),
        document_id=instance.document_id,
        org=instance.org,
        step=step,
        entry=assignment.entry,
        person=person_ref(assignment.person, assignment.title),
        action=instance.steps[step - 1].action,
        on_behalf_of=person_ref(assignment.on_behalf_of, assignment.title) if assignment.on_behalf_of else None,
        reason=assignment.reason,
        replaces=replaces,
    )


async def _announce(
    store: RouterStore, instance: Instance, request: Request, assignment: Assignment, cause: Event | Cause
) -> None:
    await store.publish(_requested(instance, request, cause))
    if assignment.unresolved:
        await store.publish(
            RoutingFailed.caused_by(cause, request_id=request.request_id, signer=request.person, reason=assignment.reason or "")
        )


def _requested(instance: Instance, request: Request, cause: Event | Cause) -> SignatureRequested:
    return SignatureRequested.caused_by(
        cause,
        request_id=request.request_id,
        step=request.step,
        step_count=instance.step_count,
        action=request.action,
        signer=request.person,
        on_behalf_of=request.on_behalf_of,
        reason=request.reason,
        title=instance.title,
        filename=instance.filename,
        submitted_by=instance.submitted_by,
        pdf_sha256=instance.pdf_sha256,
        confidential=instance.confidential,
        replaces=request.replaces,
        signature_count=planned_signatures(instance.steps),
        due_at=instance.due_at,
    )


async def _start_step(
    store: RouterStore, instance: Instance, number: int, directory: Directory, now: datetime, *, cause: Event, new: bool = False
) -> None:
    """Open step ``number`` (of a ``new`` document: stored with it)."""
    opened = _plan(instance, number, directory, now)
    await store.open_step(instance.document_id, number, [request for request, _ in opened], new=instance if new else None)
    await _announce_step(store, instance, opened, cause)


def _plan(instance: Instance, number: int, directory: Directory, now: datetime) -> list[tuple[Request, Assignment]]:
    """Step ``number``'s requests, each with whom it was assigned to and why."""
    assignments = plan_step(instance.steps[number - 1], directory, now, shield=shield_of(directory, instance.group))
    return [(_request(instance, number, assignment), assignment) for assignment in assignments]


async def _announce_step(store: RouterStore, instance: Instance, opened: list[tuple[Request, Assignment]], cause: Event) -> None:
    for request, assignment in opened:
        await _announce(store, instance, request, assignment, cause)


async def on_signed(event: Signed, store: RouterStore, *, directories: DirectoryCache, clock: Clock) -> None:
    instance = await store.instance(event.document_id)
    request, step = await store.step_of(event.request_id, event.document_id) if instance else (None, [])
    if instance is None or request is None:
        structlog.get_logger().warning("signature for an unknown request ignored", request_id=str(event.request_id))
        return
    effect = signature_effect(instance, request, step)
    # A signature in the PDF is a fact even when its request was no longer needed; when it counts, its request is
    # signed (and the document completed, if it was the last, or its next step opened) with the record. The document
    # is locked: as recorded, it is the one read with the signature added.
    status = "completed" if effect.counts and effect.then == "complete" else None
    record = _record(event)
    recorded = with_signature(instance, record, event.pdf_sha256, event.revision, status=status)
    opened = None
    if effect.counts and effect.then == "next":
        opened = _plan(recorded, request.step + 1, await directories.get(store, instance.org), clock())
    await store.record_signature(
        event.document_id, record, event.pdf_sha256, event.revision, signed=event.request_id if effect.counts else None,
        status=status, opens=(request.step + 1, [r for r, _ in opened]) if opened is not None else None,
    )
    if not effect.counts:
        structlog.get_logger().info("late signature recorded; flow unchanged", request_status=request.status)
        return
    await _cancel(store, effect.raced, f"{event.signer.name} signed before the request moved", cause=event)
    await _cancel(store, effect.needless, "the step was completed by another signer", cause=event)
    if opened is not None:
        await _announce_step(store, recorded, opened, event)
    elif effect.then == "complete":
        await _complete(store, event, recorded)


def _record(event: Signed) -> SignatureRecord:
    return SignatureRecord(
        request_id=event.request_id,
        step=event.step,
        action=event.action,
        signer=event.signer,
        on_behalf_of=event.on_behalf_of,
        signed_at=event.signed_at,
        field_name=event.field_name,
    )


async def _complete(store: RouterStore, event: Signed, instance: Instance) -> None:
    """``instance`` as the signature left it, completed (it is locked: nothing else changed it since)."""
    await store.publish(
        DocumentCompleted.caused_by(
            event,
            pdf_sha256=instance.pdf_sha256,
            signatures=list(instance.signatures),
            title=instance.title,
            submitted_by=instance.submitted_by,
        )
    )
    structlog.get_logger().info("document completed", signatures=len(instance.signatures))


async def on_signature_declined(event: SignatureDeclined, store: RouterStore) -> None:
    instance, request = await store.instance(event.document_id), await store.request(event.request_id)
    if instance is None or request is None or request.status != "pending" or instance.status != "active":
        return
    await store.set_request_status([event.request_id], "declined")
    leftover = [r.request_id for r in await store.pending_requests(event.document_id)]
    await _cancel(store, leftover, f"{event.signer.name} declined the document", cause=event)
    await store.update_instance(event.document_id, status="declined")
    await store.publish(
        DocumentDeclined.caused_by(
            event, declined_by=event.signer, reason=event.reason, title=instance.title, submitted_by=instance.submitted_by
        )
    )


async def withdraw(store: RouterStore, document_id: UUID, *, org: str, by: str, reason: str) -> None:
    """Stop a document for its submitter or an operator: CodedError when it may not be (domain.check_withdrawal)."""
    instance = await store.instance(document_id)
    check_withdrawal(instance, org, by)
    pending = [r.request_id for r in await store.pending_requests(document_id)]
    await store.set_request_status(pending, "cancelled")
    await store.update_instance(document_id, status="withdrawn")
    await store.publish(DocumentWithdrawn(correlation_id=document_id, org=org, withdrawn_by=by, reason=reason))


async def on_withdraw_document(
    command: WithdrawDocument,
    store: RouterStore,
    delivery: Delivery | None = None,
    *,
    directories: DirectoryCache,
    intake_user: str | None = None,
) -> None:
    """A person withdraws a document through the portal (the submitter, or an operator: a role in the directory), or
    a source withdraws its own through intake (``source:<name>``, taken only from intake's broker user)."""
    by = command.withdrawn_by
    if by.startswith("source:") and (delivery is None or delivery.publisher != intake_user):
        structlog.get_logger().warning(
            "withdrawal refused: a source's withdrawal not from intake", by=by, publisher=delivery.publisher if delivery else None
        )
        return
    if by.startswith("operator:") and not await _is_operator(store, directories, command.org, by):
        structlog.get_logger().warning("withdrawal refused: not an operator", by=by, document_id=str(command.correlation_id))
        return
    try:
        await withdraw(store, command.correlation_id, org=command.org, by=by, reason=command.reason)
    except CodedError as refusal:  # ended meanwhile, or not hers: nothing to do, and nothing to retry
        structlog.get_logger().info("withdrawal not done", code=refusal.code, reason=refusal.reason)


async def _is_operator(store: RouterStore, directories: DirectoryCache, org: str, by: str) -> bool:
    """``operator:<id>`` from the portal: whether the directory (now) gives that person the operator role."""
    roles = (await directories.get(store, org)).roles
    holder = by.removeprefix("operator:")
    return by.startswith("operator:") and OPERATOR_ROLE in roles and holder in roles[OPERATOR_ROLE].holders


async def on_reassign_request(command: ReassignRequest, store: RouterStore, *, directories: DirectoryCache) -> None:
    """An operator moves a waiting request from the portal's incidents page; the portal checked her role, and so
    does the router, against its own directory."""
    if not await _is_operator(store, directories, command.org, command.reassigned_by):
        structlog.get_logger().warning(
            "reassignment refused: not an operator", by=command.reassigned_by, request_id=str(command.request_id)
        )
        return
    try:
        await reassign_by_operator(
            store,
            command.request_id,
            command.to_person,
            org=command.org,
            by=command.reassigned_by,
            why=command.reason,
            directories=directories,
        )
    except CodedError as refusal:  # moved, signed or ended meanwhile, or nobody to give it to: nothing to retry
        structlog.get_logger().info("reassignment not done", code=refusal.code, reason=refusal.reason)


async def on_register_absence(command: RegisterAbsence, store: RouterStore) -> None:
    """A person's absence registered through the portal (by herself or an admin: the portal checked)."""
    try:
        await add_absence(
            store,
            command.org,
            command.person_id,
            command.starts_at,
            command.ends_at,
            note=command.note or f"by {command.registered_by}",
        )
    except (UnknownPerson, ValueError) as refusal:
        structlog.get_logger().warning("absence not registered", person=command.person_id, reason=str(refusal))


async def move_work_of(
    store: RouterStore, org: str, person_id: str, directory: Directory, now: datetime, *, absence_id: UUID
) -> int:
    """A person's absence has started: move each of their open requests to the first available substitute.

    Returns how many requests moved; those nobody can take stay with the
    person, and an operator is alerted.
    """
    moved = 0
    for seen in await store.pending_of(org, person_id):
        # The document first, then its request, as the handlers lock them (a router handling a signature on this
        # document meanwhile, in another process, would otherwise wait for us while we wait for it); then look again.
        instance, request = await store.instance(seen.document_id), await store.request(seen.request_id)
        if instance is None or instance.status != "active" or request is None or request.status != "pending":
            continue  # signed, moved or ended while we waited
        cause = Cause(event_id=absence_id, correlation_id=request.document_id, org=org)
        moved += await _move(store, request, directory, now, cause=cause)
    return moved


async def _move(store: RouterStore, request: Request, directory: Directory, now: datetime, *, cause: Cause) -> int:
    taken = {
        r.person.id
        for r in await store.step_requests(request.document_id, request.step)
        if r.status in ("pending", "signed") and r.request_id != request.request_id
    }
    represented = request.on_behalf_of.id if request.on_behalf_of else None
    instance = await store.instance(request.document_id)
    shield = shield_of(directory, instance.group)
    assignment = reassign(request.person.id, represented, request.person.title, directory, now, taken, shield=shield)
    if assignment is None:
        inside = f" inside shielded group {shield.group}" if shield else ""
        why = f"absent; no substitute{inside} is available"
        await store.publish(RoutingFailed.caused_by(cause, request_id=request.request_id, signer=request.person, reason=why))
        return 0
    await store.set_request_status([request.request_id], "reassigned")
    placed = Assignment(request.entry, assignment.person, assignment.title, assignment.on_behalf_of, assignment.reason)
    new = await _ask(store, instance, request.step, placed, cause=cause, replaces=request.request_id)
    await store.publish(
        SignatureReassigned.caused_by(
            cause,
            request_id=request.request_id,
            new_request_id=new.request_id,
            from_person=request.person,
            to_person=new.person,
            reason=f"{request.person.name} is absent",
            title=instance.title,
        )
    )
    return 1


async def reassign_by_operator(
    store: RouterStore, request_id: UUID, target: str, *, org: str, by: str, why: str, directories: DirectoryCache
) -> Request:
    """An operator moves a pending request to ``target``: a new request (and link) for her; the old link stops
    working (the signer answers 410); the trail says who moved it and why. CodedError when it cannot be done."""
    seen = await store.request(request_id, lock=False)
    if seen is None or seen.org != org:
        raise CodedError("unknown_request", f"there is no request {request_id}")
    instance = await store.instance(seen.document_id)  # the document first, as every handler locks it
    request = await store.request(request_id)
    if request is None or instance is None or instance.status != "active":
        raise CodedError("ended", "its document is no longer under way")
    directory = await directories.get(store, org)
    assignment = operator_assignment(request, target, directory, shield_of(directory, instance.group), by=by, why=why)
    cause = Cause(event_id=uuid4(), correlation_id=request.document_id, org=org)
    await store.set_request_status([request_id], "reassigned")
    new = await _ask(store, instance, request.step, assignment, cause=cause, replaces=request_id)
    await store.publish(
        SignatureReassigned.caused_by(
            cause,
            request_id=request_id,
            new_request_id=new.request_id,
            from_person=request.person,
            to_person=new.person,
            reason=assignment.reason or "",
            title=instance.title,
        )
    )
    return new


async def _cancel(store: RouterStore, request_ids: tuple[UUID, ...] | list[UUID], reason: str, *, cause: Event) -> None:
    if not request_ids:
        return
    await store.set_request_status(list(request_ids), "cancelled")
    for request_id in request_ids:
        await store.publish(SignatureCancelled.caused_by(cause, request_id=request_id, reason=reason))
