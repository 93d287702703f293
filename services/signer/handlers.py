"""The signer's event and command handlers: open a request and have its link
mailed; mail a fresh link for a reminder; close requests that were
cancelled, reassigned or whose document ended; offer the submitter the
signed PDF."""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg
import structlog

from services.signer import store
from services.signer.keys import Keyring
from services.signer.pades import Placeholder
from services.signer.tokens import mint_token
from shared.blobs import get_blob
from shared.contract import ReissueSigningLink, SendDownloadLink, SendSigningLink
from shared.events import (
    DocumentCompleted,
    DocumentDeclined,
    DocumentWithdrawn,
    PersonRef,
    SignatureCancelled,
    SignatureReassigned,
    SignatureRequested,
)
from shared.messaging import Outbox

__all__ = [
    "Links",
    "PlaceholderFinder",
    "on_document_completed",
    "on_document_ended",
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

    def url(self, kind: str, token: str) -> str:
        return f"{self.public_url.rstrip('/')}/{kind}/{token}"


async def _mail_signing_link(
    conn: asyncpg.Connection, request: asyncpg.Record, *, kind: str, reminder: int, cause: object, outbox: Outbox, links: Links
) -> None:
    signer = PersonRef.model_validate(request["signer"])
    token, token_hash = mint_token()
    expires_at = links.clock() + links.ttl
    await store.insert_token(conn, token_hash, request["request_id"], signer.id, expires_at)
    await outbox.add(
        conn,
        SendSigningLink(
            correlation_id=request["document_id"],
            causation_id=getattr(cause, "event_id", None) or getattr(cause, "command_id", None),
            org=request["org"],
            kind=kind,
            reminder=reminder,
            request_id=request["request_id"],
            recipient=signer,
            on_behalf_of=PersonRef.model_validate(request["on_behalf_of"]) if request["on_behalf_of"] else None,
            title=request["title"],
            submitted_by=PersonRef.model_validate(request["submitted_by"]),
            step=request["step"],
            step_count=request["step_count"],
            action=request["action"],
            link=links.url("s", token),
            expires_at=expires_at,
        ),
    )


PlaceholderFinder = Callable[[bytes], Awaitable[tuple[Placeholder, ...]]]


async def on_signature_requested(
    event: SignatureRequested,
    conn: asyncpg.Connection,
    *,
    outbox: Outbox,
    keyring: Keyring,
    links: Links,
    find_placeholders: PlaceholderFinder | None = None,
) -> None:
    await store.insert_request(conn, event)
    if event.action == "sign":
        # Issue the certificate now, so the signer does not wait for a key to be made,
        # and find the [SIGnn] placeholders now, so pressing Sign does not wait for that either.
        await keyring.credentials(conn, event.org, event.signer)
        if find_placeholders is not None and await store.placeholders_unknown(conn, event.document_id):
            found = await find_placeholders(await get_blob(conn, event.pdf_sha256))
            await store.save_placeholders(
                conn, event.document_id, [{"number": p.number, "page": p.page, "box": list(p.box)} for p in found]
            )
    request = await store.get_request(conn, event.request_id)
    kind = "reassigned" if event.replaces else "request"
    await _mail_signing_link(conn, request, kind=kind, reminder=0, cause=event, outbox=outbox, links=links)


async def on_reissue_signing_link(
    command: ReissueSigningLink, conn: asyncpg.Connection, *, outbox: Outbox, links: Links
) -> None:
    """A reminder: a fresh link for a request that is still open; nothing for one that is not."""
    request = await store.get_request(conn, command.request_id)
    if request is None or request["status"] != "pending":
        structlog.get_logger().info("no reminder: request is not open", request_id=str(command.request_id))
        return
    await _mail_signing_link(
        conn, request, kind="reminder", reminder=command.reminder, cause=command, outbox=outbox, links=links
    )


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
    token, token_hash = mint_token()
    expires_at = links.clock() + links.ttl
    filename = await conn.fetchval(
        "SELECT filename FROM signer.requests WHERE document_id = $1 LIMIT 1", event.document_id
    )
    await store.insert_download(
        conn,
        token_hash,
        document_id=event.document_id,
        org=event.org,
        person_id=submitter.id,
        pdf_sha256=event.pdf_sha256,
        filename=filename or "document.pdf",
        expires_at=expires_at,
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
            link=links.url("d", token),
            expires_at=expires_at,
        ),
    )
