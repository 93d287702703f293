"""The signer's event and command handlers: open a request (for a directory
person, on a PDF intake accepted) and have it mailed; mail a reminder; close
requests that were cancelled, reassigned or whose document ended; offer the
submitter the signed PDF; and make the links the notifier puts in its mails.

No link travels on the bus: the commands to the notifier say *what* to mail,
and the notifier asks for the link (:func:`mint_link`) the moment it sends
the mail, over the signer's authenticated internal API. Each new link for a
request or download revokes the earlier ones, and the link of a mail that
could not be delivered is revoked.
"""

from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import datetime
from uuid import UUID

import structlog

from services.signer.domain import (
    LinkGone,
    Links,
    MintedLink,
    SignerDocument,
    SigningRequest,
    check_request,
    ensure_mintable,
    request_from,
)
from services.signer.pades import Placeholder
from services.signer.store import SignerStore
from services.signer.tokens import mint_token
from shared.contract import ReissueSigningLink, ResendSigningMail, SendDownloadLink, SendSigningLink
from shared.errors import CodedError
from shared.events import (
    DocumentCompleted,
    DocumentDeclined,
    DocumentWithdrawn,
    NotificationFailed,
    SignatureCancelled,
    SignatureReassigned,
    SignatureRequested,
    SigningMailResent,
)

__all__ = [
    "PlaceholderFinder",
    "mint_download_link",
    "mint_signing_link",
    "on_document_completed",
    "on_document_ended",
    "on_notification_failed",
    "on_reissue_signing_link",
    "on_resend_signing_mail",
    "on_signature_cancelled",
    "on_signature_reassigned",
    "on_signature_requested",
    "resend_signing_mail",
]

PlaceholderFinder = Callable[[bytes], Awaitable[tuple[Placeholder, ...]]]


def _cause_id(cause: object) -> UUID | None:
    return getattr(cause, "event_id", None) or getattr(cause, "command_id", None)


def _mail_request(
    request: SigningRequest, *, kind: str, reminder: int, cause: object, links: Links, due_at: datetime | None = None
) -> SendSigningLink:
    """The mail for ``request``. Only its first mail names its due date: the notifier keeps it for the reminders."""
    return SendSigningLink(
        correlation_id=request.document_id, causation_id=_cause_id(cause), org=request.org, kind=kind,
        reminder=reminder, request_id=request.request_id, recipient=request.signer, on_behalf_of=request.on_behalf_of,
        title=request.title, submitted_by=request.submitted_by, step=request.step, step_count=request.step_count,
        action=request.action, expires_at=links.signing_expiry(), due_at=due_at,
    )


async def _checked_original(event: SignatureRequested, store: SignerStore) -> str:
    """The PDF intake accepted for the document, once the request passes :func:`check_request`."""
    represented = event.on_behalf_of or event.signer
    people = list(dict.fromkeys((event.signer.id, represented.id)))  # one person, unless signing on another's behalf
    facts = await store.request_facts(event.org, event.document_id, people, titles_of=represented.id if event.signer.title else None)
    return check_request(event, facts.versions, facts.people, facts.titles)


async def _prepare_signing(event: SignatureRequested, store: SignerStore, document: SignerDocument, find: PlaceholderFinder | None) -> None:
    """Issue the certificate now, so the signer does not wait for a key to be made, and find the
    [SIGnn] placeholders now, so pressing Sign does not wait for that either. Placeholders once found are
    never forgotten: a document read with them (every request after its first) is not locked to look again."""
    await store.prepare_credentials(event.org, event.signer)
    if find is not None and document.placeholders is None and await store.placeholders_unknown(event.document_id):
        await store.save_placeholders(event.document_id, await find(await store.blob(document.pdf_sha256)))


async def on_signature_requested(
    event: SignatureRequested, store: SignerStore, *, links: Links, find_placeholders: PlaceholderFinder | None = None
) -> None:
    original = await _checked_original(event, store)
    request = request_from(event)
    document = await store.begin_request(request, original)
    if event.action == "sign":
        await _prepare_signing(event, store, document, find_placeholders)
    kind = "reassigned" if event.replaces else "request"
    await store.publish(_mail_request(request, kind=kind, reminder=0, cause=event, links=links, due_at=event.due_at))


async def on_reissue_signing_link(command: ReissueSigningLink, store: SignerStore, *, links: Links) -> None:
    """A reminder for a request that is still open; nothing for one that is not."""
    request = await store.request(command.request_id)
    if request is None or not request.open:
        structlog.get_logger().info("no reminder: request is not open", request_id=str(command.request_id))
        return
    await store.publish(_mail_request(request, kind="reminder", reminder=command.reminder, cause=command, links=links))


async def resend_signing_mail(
    store: SignerStore, request_id: UUID, *, org: str, by: str, reason: str, links: Links, cause: object = None
) -> SigningRequest:
    """An operator has a still-open request mailed again, to the address the directory holds now (she mended it):
    ``signature.mail-resent`` names her; the new mail's link, made when it is sent, ends the earlier ones.
    CodedError when there is nothing to resend."""
    request = await store.request(request_id)
    if request is None or request.org != org:
        raise CodedError("unknown_request", f"there is no request {request_id}")
    if not request.open:
        raise CodedError("closed", f"request {request_id} is {request.status}: there is nothing to resend")
    person = await store.directory_person(org, request.signer.id)
    if person is None or not person.email:
        raise CodedError("no_address", f"{request.signer.id} has no address in the directory: import the mended directory first")
    signer = request.signer.model_copy(update={"email": person.email})
    await store.readdress(request_id, signer)
    resent = SigningMailResent(
        correlation_id=request.document_id, causation_id=_cause_id(cause), org=org, request_id=request_id, signer=signer,
        resent_by=by, reason=reason,
    )
    await store.publish(resent)
    await store.publish(_mail_request(replace(request, signer=signer), kind="request", reminder=0, cause=resent, links=links))
    return request


async def on_resend_signing_mail(command: ResendSigningMail, store: SignerStore, *, links: Links) -> None:
    """`paraaf document resend`, from the operator's broker user (the only publisher the signer accepts it from)."""
    try:
        await resend_signing_mail(
            store, command.request_id, org=command.org, by=command.resent_by, reason=command.reason, links=links, cause=command
        )
    except CodedError as refusal:  # closed meanwhile, or no address: nothing to retry
        structlog.get_logger().warning("mail not resent", code=refusal.code, reason=refusal.reason, request_id=str(command.request_id))


async def on_signature_cancelled(event: SignatureCancelled, store: SignerStore) -> None:
    await store.cancel_pending(request_id=event.request_id, reason=event.reason)


async def on_signature_reassigned(event: SignatureReassigned, store: SignerStore) -> None:
    await store.cancel_pending(request_id=event.request_id, status="reassigned", reason=event.reason)


async def on_document_ended(event: DocumentCompleted | DocumentDeclined | DocumentWithdrawn, store: SignerStore) -> None:
    await store.end_document(event.document_id, event.routing_key.removeprefix("document."))


async def on_document_completed(event: DocumentCompleted, store: SignerStore, *, links: Links) -> None:
    """Close the document's links and offer the submitter the signed PDF."""
    await on_document_ended(event, store)
    submitter = event.submitted_by
    if submitter is None or not submitter.email:
        return
    await store.grant_download(  # under the document's filename
        document_id=event.document_id, org=event.org, person_id=submitter.id, pdf_sha256=event.pdf_sha256,
    )
    await store.publish(
        SendDownloadLink(
            correlation_id=event.correlation_id, causation_id=event.event_id, org=event.org, recipient=submitter,
            title=event.title, signatures=event.signatures, expires_at=links.download_expiry(),
        )
    )


async def on_notification_failed(event: NotificationFailed, store: SignerStore) -> None:
    """A mail that could not be delivered: the link made for it must not work for whoever holds it."""
    if event.causation_id is not None:
        await store.revoke_links_of_mail(event.causation_id)


async def mint_signing_link(store: SignerStore, request_id: UUID, mail_id: UUID, *, links: Links) -> MintedLink:
    """A fresh link for an open request, for the mail ``mail_id``; earlier links of the request stop working."""
    found = await store.request(request_id)
    request = ensure_mintable(found, await store.document(found.document_id) if found else None, request_id)
    token, token_hash = mint_token()
    expires_at = links.signing_expiry()
    await store.insert_token(token_hash, request_id, request.signer.id, expires_at, mail_id)
    return MintedLink(links.url("s", token, request.org), expires_at)


async def mint_download_link(store: SignerStore, document_id: UUID, person_id: str, mail_id: UUID, *, links: Links) -> MintedLink:
    """A fresh link to the signed PDF for the person it was granted to; earlier ones stop working."""
    token, token_hash = mint_token()
    expires_at = links.download_expiry()
    made = await store.insert_download(token_hash, document_id=document_id, person_id=person_id, expires_at=expires_at, mail_id=mail_id)
    if not made:
        raise LinkGone(f"{person_id} may not download document {document_id}")
    document = await store.document(document_id)
    return MintedLink(links.url("d", token, document.org if document else None), expires_at)
