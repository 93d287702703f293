"""The notifier's handlers only queue mail and keep the reminder schedule;
sender.py delivers the mail and scheduler.py acts on the schedule, so a dead
SMTP server never holds up an event. A queued mail holds no link, only a
placeholder the sender fills at send time. Each runs in the message's
transaction, on a :class:`NotifierStore`; the rules are domain.py's.

Each mail is keyed by the intent that asked for it (a command's or an
event's id): the same intent handled twice queues one mail.
"""

from collections.abc import Sequence
from typing import cast

import structlog

from services.notifier.digests import DigestPolicy, DigestStore, held_for_digest
from services.notifier.domain import DueDate, Move, ReminderPolicy, Schedule, has_address, operator_mail_id, why_no_link_mail
from services.notifier.render import LINK, Mail, MailRenderer
from services.notifier.store import NotifierStore, SpooledMail
from shared.clock import Clock
from shared.contract import SendDownloadLink, SendSigningLink, SendSignInLink
from shared.events import (
    DocumentCompleted,
    DocumentDeclined,
    DocumentWithdrawn,
    RoutingFailed,
    SignatureCancelled,
    SignatureReassigned,
    Signed,
)

__all__ = [
    "on_document_declined",
    "on_document_ended",
    "on_request_closed",
    "on_routing_failed",
    "on_send_download_link",
    "on_send_sign_in_link",
    "on_send_signing_link",
]


async def on_send_signing_link(
    command: SendSigningLink, store: NotifierStore, *, renderer: MailRenderer, policy: ReminderPolicy, clock: Clock,
    digests: DigestPolicy | None = None,
) -> None:
    """Mail a request, reminder or reassigned request; a new request also starts its reminder schedule. With
    ``digests``, a new request for someone who asked for a digest and has many waiting is held for her digest."""
    now = clock()
    if _withheld(command, why_no_link_mail(command.recipient.email, False)):
        return
    opening = None
    if command.kind != "reminder":
        opening = policy.opening(command.request_id, command.org, command.correlation_id, now, command.expires_at, command.due_at)
    # Locked, so an event closing the request either sees this mail (and cancels it) or came first.
    preference = None
    if digests is not None and command.kind == "request" and opening is not None:
        # Its recipient noted and, unless it may be held for her digest, its mail queued, as its schedule opens.
        due = policy.shown_due(opening, now, command.expires_at, command.due_at)
        mail = _signing_mail(command, _render_signing_link(command, renderer, due, opening))
        ended, schedule, preference, queued = await store.schedule_for_request(opening, command.recipient, command.title, mail, now)
        if queued:
            return
    else:
        ended, schedule = await store.schedule_for_mail(command.request_id, command.correlation_id, opening)
    if _withheld(command, why_no_link_mail(command.recipient.email, ended, schedule)):
        return
    if (
        digests is not None and command.kind == "request"
        and await held_for_digest(cast(DigestStore, store), command, digests, preference)
    ):
        return
    due = policy.shown_due(schedule, now, command.expires_at, command.due_at)
    await store.queue_mail(_signing_mail(command, _render_signing_link(command, renderer, due, schedule)), now)


def _withheld(command: SendSigningLink, reason: str | None) -> bool:
    if reason is not None:
        structlog.get_logger().info(f"no mail: {reason}", request_id=str(command.request_id), person=command.recipient.id)
    return reason is not None


def _render_signing_link(command: SendSigningLink, renderer: MailRenderer, due: DueDate, schedule: Schedule | None) -> Mail:
    return renderer.render(
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
        due_at=due.at,
        due_timed=due.timed,
        overdue=due.overdue,
        requested_at=schedule.requested_at if schedule else None,
        reminder=command.reminder,
    )


def _signing_mail(command: SendSigningLink, mail: Mail) -> SpooledMail:
    return SpooledMail(
        mail_id=command.command_id,
        org=command.org,
        document_id=command.correlation_id,
        kind=f"signature_{command.kind}",
        recipient=command.recipient.email or "",
        content=mail,
        request_id=command.request_id,
        link_kind="signing",
    )


async def on_send_download_link(command: SendDownloadLink, store: NotifierStore, *, renderer: MailRenderer, clock: Clock) -> None:
    """Tell the submitter the document is signed, with the link to download it."""
    if not has_address(command.recipient):
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
    spooled = SpooledMail(
        command.command_id, command.org, command.correlation_id, "document_completed", command.recipient.email or "", mail,
        link_kind="download", link_person=command.recipient.id,
    )
    await store.queue_mail(spooled, clock())


async def on_send_sign_in_link(command: SendSignInLink, store: NotifierStore, *, renderer: MailRenderer, clock: Clock) -> None:
    """Mail a person the one-time link that signs her in to the portal; the attempt (``correlation_id``) names the link."""
    if not has_address(command.recipient):
        structlog.get_logger().warning("no mail: the person signing in has no address", person=command.recipient.id)
        return
    mail = renderer.render("sign_in", command.recipient.language, recipient=command.recipient, link=LINK, expires_at=command.expires_at)
    spooled = SpooledMail(
        command.command_id, command.org, command.correlation_id, "sign_in", command.recipient.email or "", mail,
        request_id=command.correlation_id, link_kind="sign_in",
    )
    await store.queue_mail(spooled, clock())


async def on_request_closed(event: Signed | SignatureCancelled | SignatureReassigned, store: NotifierStore, *, clock: Clock) -> None:
    """A signed, cancelled or reassigned request gets no more reminders; the person a request
    moved away from is told later, in one notice for the whole absence."""
    now = clock()
    await store.close_request(event.request_id, event.org, event.correlation_id, closed_by=event.routing_key, now=now)
    if isinstance(event, SignatureReassigned) and has_address(event.from_person):
        await store.record_move(
            Move(event.event_id, event.org, event.document_id, event.from_person, event.to_person, event.title, event.reason, now)
        )


async def on_document_ended(event: DocumentCompleted | DocumentDeclined | DocumentWithdrawn, store: NotifierStore, *, clock: Clock) -> None:
    """A completed, declined or withdrawn document gets no more reminders or link mails."""
    await store.end_document(event.correlation_id, event.org, event.routing_key.removeprefix("document."), clock())


async def on_document_declined(event: DocumentDeclined, store: NotifierStore, *, renderer: MailRenderer, clock: Clock) -> None:
    """Stop the document's reminders and tell the submitter who declined and why."""
    await on_document_ended(event, store, clock=clock)
    submitter = event.submitted_by
    if submitter is None or not has_address(submitter):
        structlog.get_logger().warning("declined document has no submitter address; nobody mailed")
        return
    mail = renderer.render(
        "declined", submitter.language, recipient=submitter, title=event.title, declined_by=event.declined_by, reason=event.reason
    )
    spooled = SpooledMail(event.event_id, event.org, event.correlation_id, "document_declined", submitter.email or "", mail)
    await store.queue_mail(spooled, clock())


async def on_routing_failed(
    event: RoutingFailed,
    store: NotifierStore,
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
        spooled = SpooledMail(operator_mail_id(event.event_id, address), event.org, event.correlation_id, "routing_alert", address, mail)
        await store.queue_mail(spooled, clock())
