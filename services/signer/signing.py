"""What happens behind a signing link: check it, sign (or approve), decline.

A signature is one transaction: the document row is locked (signatures on one
document are made one after the other, each on top of the last), the PDF is
signed in a worker process, and the new version, the request's new state, the
spent token and the ``signature.signed`` event are committed together.
"""

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

import asyncpg
import structlog

from services.signer import store
from services.signer.keys import Keyring
from services.signer.pades import SigningJob, SigningPool
from services.signer.tokens import hash_token
from shared.blobs import get_blob, put_blob
from shared.events import PersonRef, SignatureDeclined, Signed, utcnow
from shared.messaging import Outbox

__all__ = ["LinkRefused", "check_link", "decline", "open_link", "sign", "stamp_text"]


class LinkRefused(Exception):
    """The link cannot be used; ``code`` names why (the page says it in the reader's language)."""

    def __init__(self, code: str, status: int = 410, detail: str | None = None) -> None:
        super().__init__(code)
        self.code = code
        self.status = status
        self.detail = detail


def check_link(link: asyncpg.Record | None, now: datetime) -> asyncpg.Record:
    """The rules a link must pass before it shows a form or takes a signature."""
    if link is None:
        raise LinkRefused("unknown", status=404)
    if link["status"] == "reassigned":
        raise LinkRefused("reassigned", detail=link["status_reason"])
    if link["status"] == "cancelled":
        raise LinkRefused("cancelled", detail=link["status_reason"])
    if link["status"] in ("signed", "declined") or link["used_at"] is not None:
        raise LinkRefused("used")
    if link["document_status"] != "active":
        raise LinkRefused("ended")
    if link["expires_at"] <= now:
        raise LinkRefused("expired")
    return link


async def open_link(conn: asyncpg.Connection | asyncpg.Pool, token: str, now: datetime) -> asyncpg.Record:
    return check_link(await store.find_link(conn, hash_token(token)), now)


def stamp_text(signer: PersonRef, on_behalf_of: PersonRef | None, signed_at: datetime, timezone: str) -> str:
    local = signed_at.astimezone(ZoneInfo(timezone))
    lines = ["Digitaal ondertekend door", signer.name]
    if on_behalf_of is not None:
        lines.append(f"wnd. {on_behalf_of.title or on_behalf_of.name}")
    elif signer.title:
        lines.append(signer.title)
    lines.append(local.strftime("%d-%m-%Y %H:%M %Z"))
    return "\n".join(lines)


@dataclass(frozen=True)
class Done:
    action: str
    title: str


async def sign(
    pool: asyncpg.Pool,
    token: str,
    *,
    signing_pool: SigningPool,
    keyring: Keyring,
    outbox: Outbox,
    timezone: str,
) -> Done:
    async with pool.acquire() as conn, conn.transaction():
        link = check_link(await store.find_link(conn, hash_token(token), lock=True), utcnow())
        document = await store.lock_document(conn, link["document_id"])
        signer = PersonRef.model_validate(link["signer"])
        on_behalf_of = PersonRef.model_validate(link["on_behalf_of"]) if link["on_behalf_of"] else None
        signed_at = utcnow()
        field_name = None
        pdf_sha256, revision = document["pdf_sha256"], document["revision"]
        if link["action"] == "sign":
            credentials = await keyring.credentials(conn, link["org"], signer)
            field_name = f"Signature{revision + 1}"
            signed_pdf = await signing_pool.sign(
                SigningJob(
                    pdf=await get_blob(conn, pdf_sha256),
                    key_der=credentials.key_der,
                    cert_der=credentials.cert_der,
                    chain_der=credentials.chain_der,
                    field_name=field_name,
                    stamp_text=stamp_text(signer, on_behalf_of, signed_at, timezone),
                    signer_name=signer.name,
                    reason=f"wnd. {on_behalf_of.title or on_behalf_of.name}" if on_behalf_of else "Ondertekend",
                    index=revision,
                )
            )
            pdf_sha256, revision = await put_blob(conn, signed_pdf), revision + 1
            await conn.execute(
                "UPDATE signer.documents SET pdf_sha256 = $2, revision = $3, updated_at = now() WHERE document_id = $1",
                link["document_id"],
                pdf_sha256,
                revision,
            )
        await conn.execute(
            "UPDATE signer.requests SET status = 'signed', field_name = $2, decided_at = $3 WHERE request_id = $1",
            link["request_id"],
            field_name,
            signed_at,
        )
        await conn.execute("UPDATE signer.tokens SET used_at = $2 WHERE token_hash = $1", link["token_hash"], signed_at)
        await outbox.add(
            conn,
            Signed(
                correlation_id=link["document_id"],
                org=link["org"],
                request_id=link["request_id"],
                step=link["step"],
                action=link["action"],
                signer=signer,
                on_behalf_of=on_behalf_of,
                signed_at=signed_at,
                pdf_sha256=pdf_sha256,
                revision=revision,
                field_name=field_name,
            ),
        )
    structlog.get_logger().info(
        "request signed", document_id=str(link["document_id"]), request_id=str(link["request_id"]), action=link["action"]
    )
    return Done(action=link["action"], title=link["title"])


async def decline(pool: asyncpg.Pool, token: str, reason: str, *, outbox: Outbox) -> Done:
    async with pool.acquire() as conn, conn.transaction():
        link = check_link(await store.find_link(conn, hash_token(token), lock=True), utcnow())
        now = utcnow()
        await conn.execute(
            "UPDATE signer.requests SET status = 'declined', status_reason = $2, decided_at = $3 WHERE request_id = $1",
            link["request_id"],
            reason,
            now,
        )
        await conn.execute("UPDATE signer.tokens SET used_at = $2 WHERE token_hash = $1", link["token_hash"], now)
        await outbox.add(
            conn,
            SignatureDeclined(
                correlation_id=link["document_id"],
                org=link["org"],
                request_id=link["request_id"],
                step=link["step"],
                signer=PersonRef.model_validate(link["signer"]),
                reason=reason,
            ),
        )
    structlog.get_logger().info("request declined", document_id=str(link["document_id"]))
    return Done(action="decline", title=link["title"])
