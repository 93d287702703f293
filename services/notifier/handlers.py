"""The notifier's handlers only queue mail and keep the reminder schedule;
sender.py delivers the mail and scheduler.py acts on the schedule, so a dead
SMTP server never holds up an event. A queued mail holds no link, only a
placeholder the sender fills at send time.

Each mail is keyed by the intent that asked for it (a command's or an
event's id): the same intent handled twice queues one mail.
"""

from collections.abc import Callable, Sequence
from datetime import datetime

import asyncpg
import structlog

from services.notifier import store
from services.notifier.domain import ReminderPolicy, operator_mail_id
from services.notifier.render import LINK, MailRenderer
from shared.contract import SendDownloadLink, SendSigningLink
from shared.events import (
    DocumentCompleted,
    DocumentDeclined,
    DocumentWithdrawn,
    RoutingUnresolved,
    SignatureCancelled,
    SignatureReassigned,
    Signed,
)

__all__ = [
    "on_document_declined",
    "on_document_ended",
    "on_request_closed",
    "on_routing_unresolved",
    "on_send_download_link",
    "on_send_signing_link",
]

Clock = Callable[[], datetime]


async def on_send_signing_link(
    command: SendSigningLink, conn: asyncpg.Connection, *, renderer: MailRenderer, policy: ReminderPolicy, clock: Clock
) -> None:
    """Mail a request, reminder or reassigned request; a new request also starts its reminder schedule."""
    now = clock()
    if not command.recipient.email:
        structlog.get_logger().warning("no mail: the signer has no address", person=command.recipient.id)
        return
    if await store.document_ended(conn, command.correlation_id):
        structlog.get_logger().info("no mail: the document ended", request_id=str(command.request_id))
        return
    if command.kind != "reminder":
        await store.open_schedule(
            conn,
            request_id=command.request_id,
            org=command.org,
            document_id=command.correlation_id,
            requested_at=now,
            due_at=policy.due_date(now, command.expires_at, command.due_at),
            next_at=policy.first_reminder(now),
        )
    # Locked, so an event closing the request either sees this mail (and cancels it) or came first.
    schedule = await store.schedule_of(conn, command.request_id, lock=True)
    if schedule and schedule["status"] == "closed":
        # Signed, moved or cancelled before this command arrived: its link would not work.
        structlog.get_logger().info("no mail: the request is closed", request_id=str(command.request_id))
        return
    due_at = schedule["due_at"] if schedule and schedule["due_at"] else policy.due_date(now, command.expires_at, command.due_at)
    mail = renderer.render(
        command.kind,
        command.recipient.language,
        recipient=command.recipient,
        on_behalf_of=command.on_behalf_of,
        submitted_by=command.submitted_by,
        title=command.title,
        step=command.step,
        step_count=command.step_count,
        action=command.action,
        link=LINK,
        expires_at=command.expires_at,
        due_at=due_at,
        overdue=due_at <= now,
        requested_at=schedule["requested_at"] if schedule else None,
        reminder=command.reminder,
    )
    await store.queue_mail(
        conn,
        mail_id=command.command_id,
        org=command.org,
        document_id=command.correlation_id,
        kind=f"signature_{command.kind}",
        recipient=command.recipient.email,
        mail=mail,
        now=now,
        request_id=command.request_id,
        link_kind="signing",
    )


async def on_send_download_link(
    command: SendDownloadLink, conn: asyncpg.Connection, *, renderer: MailRenderer, clock: Clock
) -> None:
    """Tell the submitter the document is signed, with the link to download it."""
    if not command.recipient.email:
        structlog.get_logger().warning("no mail: the submitter has no address", person=command.recipient.id)
        return
    mail = renderer.render(
        "completed",
        command.recipient.language,
        recipient=command.recipient,
        title=command.title,
        signatures=command.signatures,
        link=LINK,
        expires_at=command.expires_at,
    )
    await store.queue_mail(
        conn,
        mail_id=command.command_id,
        org=command.org,
        document_id=command.correlation_id,
        kind="document_completed",
        recipient=command.recipient.email,
        mail=mail,
        now=clock(),
        link_kind="download",
        link_person=command.recipient.id,
    )


async def on_request_closed(
    event: Signed | SignatureCancelled | SignatureReassigned, conn: asyncpg.Connection, *, clock: Clock
) -> None:
    """A signed, cancelled or reassigned request gets no more reminders; the person a request
    moved away from is told later, in one notice for the whole absence."""
    now = clock()
    await store.close_request(
        conn,
        request_id=event.request_id,
        org=event.org,
        document_id=event.correlation_id,
        closed_by=event.routing_key,
        now=now,
    )
    if isinstance(event, SignatureReassigned) and event.from_person.email:
        await store.record_move(conn, event, now)


async def on_document_ended(
    event: DocumentCompleted | DocumentDeclined | DocumentWithdrawn, conn: asyncpg.Connection, *, clock: Clock
) -> None:
    await store.end_document(
        conn,
        document_id=event.correlation_id,
        org=event.org,
        status=event.routing_key.removeprefix("document."),
        now=clock(),
    )


async def on_document_declined(
    event: DocumentDeclined, conn: asyncpg.Connection, *, renderer: MailRenderer, clock: Clock
) -> None:
    """Stop the document's reminders and tell the submitter who declined and why."""
    await on_document_ended(event, conn, clock=clock)
    submitter = event.submitted_by
    if submitter is None or not submitter.email:
        structlog.get_logger().warning("declined document has no submitter address; nobody mailed")
        return
    mail = renderer.render(
        "declined",
        submitter.language,
        recipient=submitter,
        title=event.title,
        declined_by=event.declined_by,
        reason=event.reason,
    )
    await store.queue_mail(
        conn,
        mail_id=event.event_id,
        org=event.org,
        document_id=event.correlation_id,
        kind="document_declined",
        recipient=submitter.email,
        mail=mail,
        now=clock(),
    )


async def on_routing_unresolved(
    event: RoutingUnresolved,
    conn: asyncpg.Connection,
    *,
    renderer: MailRenderer,
    operators: Sequence[str],
    language: str,
    clock: Clock,
) -> None:
    """Alert every operator address: nobody in a signer's row of substitutes is available."""
    if not operators:
        structlog.get_logger().warning("routing alert not mailed: PARAAF_OPERATOR_EMAILS is empty", reason=event.reason)
        return
    mail = renderer.render(
        "routing_alert",
        language,
        signer=event.signer,
        reason=event.reason,
        document_id=event.correlation_id,
        request_id=event.request_id,
        occurred_at=event.occurred_at,
    )
    for address in operators:
        await store.queue_mail(
            conn,
            mail_id=operator_mail_id(event.event_id, address),
            org=event.org,
            document_id=event.correlation_id,
            kind="routing_alert",
            recipient=address,
            mail=mail,
            now=clock(),
        )
