"""The signer's event handlers: open a request and mail its link; close
requests when they are cancelled or their document ends."""

from collections.abc import Callable
from datetime import datetime, timedelta

import asyncpg

from services.signer import store
from services.signer.keys import Keyring
from services.signer.tokens import mint_token
from shared.contract import SendSigningLink
from shared.events import DocumentCompleted, DocumentDeclined, DocumentWithdrawn, SignatureCancelled, SignatureRequested
from shared.messaging import Outbox

__all__ = ["on_document_ended", "on_signature_cancelled", "on_signature_requested"]


async def on_signature_requested(
    event: SignatureRequested,
    conn: asyncpg.Connection,
    *,
    outbox: Outbox,
    keyring: Keyring,
    public_url: str,
    link_ttl: timedelta,
    clock: Callable[[], datetime],
) -> None:
    await store.insert_request(conn, event)
    if event.action == "sign":
        # Issue the certificate now, so the signer does not wait for a key to be made.
        await keyring.credentials(conn, event.org, event.signer)
    token, token_hash = mint_token()
    expires_at = clock() + link_ttl
    await store.insert_token(conn, token_hash, event.request_id, event.signer.id, expires_at)
    await outbox.add(
        conn,
        SendSigningLink(
            correlation_id=event.correlation_id,
            causation_id=event.event_id,
            org=event.org,
            kind="request",
            request_id=event.request_id,
            recipient=event.signer,
            on_behalf_of=event.on_behalf_of,
            title=event.title,
            submitted_by=event.submitted_by,
            step=event.step,
            step_count=event.step_count,
            action=event.action,
            link=f"{public_url.rstrip('/')}/s/{token}",
            expires_at=expires_at,
        ),
    )


async def on_signature_cancelled(event: SignatureCancelled, conn: asyncpg.Connection) -> None:
    await store.cancel_pending(conn, request_id=event.request_id, reason=event.reason)


async def on_document_ended(
    event: DocumentCompleted | DocumentDeclined | DocumentWithdrawn, conn: asyncpg.Connection
) -> None:
    status = event.routing_key.removeprefix("document.")
    await store.cancel_pending(conn, document_id=event.document_id, reason=f"the document was {status}")
    await store.end_document(conn, event.document_id, status)
