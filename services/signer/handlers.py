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
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

import asyncpg
import structlog

from services.signer import store
from services.signer.keys import Keyring
from services.signer.pades import Placeholder
from services.signer.tokens import mint_token
from shared.blobs import get_blob, version_digests
from shared.contract import ReissueSigningLink, SendDownloadLink, SendSigningLink
from shared.events import (
    DocumentCompleted,
    DocumentDeclined,
    DocumentWithdrawn,
    NotificationFailed,
    PersonRef,
    SignatureCancelled,
    SignatureReassigned,
    SignatureRequested,
)
from shared.messaging import Outbox, PermanentError

__all__ = [
    "LinkGone",
    "Links",
    "MintedLink",
    "PlaceholderFinder",
    "mint_download_link",
    "mint_signing_link",
    "on_document_completed",
    "on_document_ended",
    "on_notification_failed",
    "on_reissue_signing_link",
    "on_signature_cancelled",
    "on_signature_reassigned",
    "on_signature_requested",
]


@dataclass(frozen=True)
class Links:
    """How links are made: where the page lives, how long a link works, what time it is."""

    public_url: str
    ttl: timedelta
    clock: Callable[[], datetime]
    download_ttl: timedelta = timedelta(days=7)

    def url(self, kind: str, token: str) -> str:
        return f"{self.public_url.rstrip('/')}/{kind}/{token}"


@dataclass(frozen=True)
class MintedLink:
    url: str
    expires_at: datetime


class LinkGone(LookupError):
    """No link can be made: the request is no longer open, or there is nothing to download."""


def _cause_id(cause: object) -> UUID | None:
    return getattr(cause, "event_id", None) or getattr(cause, "command_id", None)


async def _ask_mail(
    conn: asyncpg.Connection, request: asyncpg.Record, *, kind: str, reminder: int, cause: object, outbox: Outbox, links: Links
) -> None:
    await outbox.add(
        conn,
        SendSigningLink(
            correlation_id=request["document_id"],
            causation_id=_cause_id(cause),
            org=request["org"],
            kind=kind,
            reminder=reminder,
            request_id=request["request_id"],
            recipient=PersonRef.model_validate(request["signer"]),
            on_behalf_of=PersonRef.model_validate(request["on_behalf_of"]) if request["on_behalf_of"] else None,
            title=request["title"],
            submitted_by=PersonRef.model_validate(request["submitted_by"]),
            step=request["step"],
            step_count=request["step_count"],
            action=request["action"],
            expires_at=links.clock() + links.ttl,
        ),
    )


PlaceholderFinder = Callable[[bytes], Awaitable[tuple[Placeholder, ...]]]


async def _check_person(conn: asyncpg.Connection, org: str, person: PersonRef, what: str) -> None:
    found = await store.directory_person(conn, org, person.id)
    if found is None:
        raise PermanentError(f"{what} `{person.id}` is not in the directory of `{org}`")
    if (found["name"], found["email"].lower()) != (person.name, person.email.lower()):
        raise PermanentError(f"{what} `{person.id}` is not who the directory says (name or address differ)")


async def _check_request(conn: asyncpg.Connection, event: SignatureRequested) -> str:
    """Refuse a request the signer must not act on; the PDF intake accepted for the document otherwise."""
    versions = await version_digests(conn, event.document_id, event.org)
    if not versions:
        raise PermanentError(f"document {event.document_id} was never accepted by intake for `{event.org}`")
    if event.pdf_sha256 not in versions:
        raise PermanentError(f"PDF {event.pdf_sha256} is no version of document {event.document_id}")
    await _check_person(conn, event.org, event.signer, "signer")
    represented = event.on_behalf_of or event.signer
    if event.on_behalf_of is not None:
        await _check_person(conn, event.org, event.on_behalf_of, "represented person")
    if event.signer.title and event.signer.title not in await store.held_titles(conn, event.org, represented.id):
        raise PermanentError(f"`{represented.id}` holds no role titled `{event.signer.title}`")
    return versions[0]


async def on_signature_requested(
    event: SignatureRequested,
    conn: asyncpg.Connection,
    *,
    outbox: Outbox,
    keyring: Keyring,
    links: Links,
    find_placeholders: PlaceholderFinder | None = None,
) -> None:
    original = await _check_request(conn, event)
    current, _ = await store.current_version(conn, event.document_id, event.org, original)
    await store.insert_request(conn, event)
    if event.action == "sign":
        # Issue the certificate now, so the signer does not wait for a key to be made,
        # and find the [SIGnn] placeholders now, so pressing Sign does not wait for that either.
        await keyring.credentials(conn, event.org, event.signer)
        if find_placeholders is not None and await store.placeholders_unknown(conn, event.document_id):
            found = await find_placeholders(await get_blob(conn, current))
            await store.save_placeholders(
                conn, event.document_id, [{"number": p.number, "page": p.page, "box": list(p.box)} for p in found]
            )
    request = await store.get_request(conn, event.request_id)
    kind = "reassigned" if event.replaces else "request"
    await _ask_mail(conn, request, kind=kind, reminder=0, cause=event, outbox=outbox, links=links)


async def on_reissue_signing_link(
    command: ReissueSigningLink, conn: asyncpg.Connection, *, outbox: Outbox, links: Links
) -> None:
    """A reminder for a request that is still open; nothing for one that is not."""
    request = await store.get_request(conn, command.request_id)
    if request is None or request["status"] != "pending":
        structlog.get_logger().info("no reminder: request is not open", request_id=str(command.request_id))
        return
    await _ask_mail(conn, request, kind="reminder", reminder=command.reminder, cause=command, outbox=outbox, links=links)


async def on_signature_cancelled(event: SignatureCancelled, conn: asyncpg.Connection) -> None:
    await store.cancel_pending(conn, request_id=event.request_id, reason=event.reason)


async def on_signature_reassigned(event: SignatureReassigned, conn: asyncpg.Connection) -> None:
    await store.cancel_pending(conn, request_id=event.request_id, status="reassigned", reason=event.reason)


async def on_document_ended(
    event: DocumentCompleted | DocumentDeclined | DocumentWithdrawn, conn: asyncpg.Connection
) -> None:
    status = event.routing_key.removeprefix("document.")
    await store.cancel_pending(conn, document_id=event.document_id, reason=f"the document was {status}")
    await store.end_document(conn, event.document_id, status)


async def on_document_completed(
    event: DocumentCompleted, conn: asyncpg.Connection, *, outbox: Outbox, links: Links
) -> None:
    """Close the document's links and offer the submitter the signed PDF."""
    await on_document_ended(event, conn)
    submitter = event.submitted_by
    if submitter is None or not submitter.email:
        return
    filename = await conn.fetchval("SELECT filename FROM signer.requests WHERE document_id = $1 LIMIT 1", event.document_id)
    await store.grant_download(
        conn,
        document_id=event.document_id,
        org=event.org,
        person_id=submitter.id,
        pdf_sha256=event.pdf_sha256,
        filename=filename or "document.pdf",
    )
    await outbox.add(
        conn,
        SendDownloadLink(
            correlation_id=event.correlation_id,
            causation_id=event.event_id,
            org=event.org,
            recipient=submitter,
            title=event.title,
            signatures=event.signatures,
            expires_at=links.clock() + links.download_ttl,
        ),
    )


async def on_notification_failed(event: NotificationFailed, conn: asyncpg.Connection) -> None:
    """A mail that could not be delivered: the link made for it must not work for whoever holds it."""
    if event.causation_id is not None:
        await store.revoke_links_of_mail(conn, event.causation_id)


async def mint_signing_link(conn: asyncpg.Connection, request_id: UUID, mail_id: UUID, *, links: Links) -> MintedLink:
    """A fresh link for an open request, for the mail ``mail_id``; earlier links of the request stop working."""
    request = await store.get_request(conn, request_id)
    document_status = await conn.fetchval(
        "SELECT status FROM signer.documents WHERE document_id = $1", request["document_id"]
    ) if request else None
    if request is None or request["status"] != "pending" or document_status != "active":
        raise LinkGone(f"request {request_id} is not open")
    token, token_hash = mint_token()
    expires_at = links.clock() + links.ttl
    signer = PersonRef.model_validate(request["signer"])
    await store.insert_token(conn, token_hash, request_id, signer.id, expires_at, mail_id)
    return MintedLink(links.url("s", token), expires_at)


async def mint_download_link(
    conn: asyncpg.Connection, document_id: UUID, person_id: str, mail_id: UUID, *, links: Links
) -> MintedLink:
    token, token_hash = mint_token()
    expires_at = links.clock() + links.download_ttl
    if not await store.insert_download(
        conn, token_hash, document_id=document_id, person_id=person_id, expires_at=expires_at, mail_id=mail_id
    ):
        raise LinkGone(f"{person_id} may not download document {document_id}")
    return MintedLink(links.url("d", token), expires_at)
