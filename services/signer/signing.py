"""What happens behind a signing link: check it, sign (or approve), decline.

A signature is one transaction: the document row is locked (signatures on one
document are made one after the other, each on top of the last), the PDF is
signed in a worker process, and the new version, the request's new state, the
spent token and the ``signature.signed`` event are committed together.
"""

from dataclasses import dataclass
from datetime import datetime

import asyncpg
import structlog

from services.signer import store
from services.signer.fonts import DEFAULT_FONT
from services.signer.keys import Keyring
from services.signer.pades import Placeholder, SigningJob, SigningPool
from services.signer.stamps import on_behalf_text, stamp_text
from services.signer.tokens import hash_token
from shared.blobs import get_blob, put_blob
from shared.events import PersonRef, SignatureDeclined, Signed, utcnow
from shared.messaging import Outbox

__all__ = ["Done", "LinkRefused", "Stamping", "check_link", "decline", "open_link", "sign"]


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
    if link["person_id"] != PersonRef.model_validate(link["signer"]).id:
        raise LinkRefused("unknown", status=404)  # a token is only ever good for the person it was made for
    if link["status"] == "reassigned":
        raise LinkRefused("reassigned", detail=link["status_reason"])
    if link["document_status"] in ("completed", "declined", "withdrawn"):
        raise LinkRefused(link["document_status"])
    if link["status"] == "cancelled":
        raise LinkRefused("cancelled", detail=link["status_reason"])
    if link["status"] == "declined":
        raise LinkRefused("request_declined")
    if link["status"] == "signed" or link["used_at"] is not None:
        raise LinkRefused("used")
    if link["expires_at"] <= now:
        raise LinkRefused("expired")
    return link


async def _usable(conn: asyncpg.Connection | asyncpg.Pool, token: str, now: datetime, *, lock: bool = False) -> asyncpg.Record:
    link = check_link(await store.find_link(conn, hash_token(token), lock=lock), now)
    # Steps run in order. The router only asks the next step once the last one
    # is done, but the signer checks too, so no link can jump the queue.
    if await store.earlier_steps_open(conn, link["document_id"], link["step"]):
        raise LinkRefused("not_yet", status=409)
    return link


async def open_link(conn: asyncpg.Connection | asyncpg.Pool, token: str, now: datetime) -> asyncpg.Record:
    return await _usable(conn, token, now)


@dataclass(frozen=True)
class Stamping:
    """How signatures look and what they carry beyond the signer's own: local time, a timestamp, the font."""

    timezone: str = "Europe/Brussels"
    tsa_url: str | None = None
    font_path: str = DEFAULT_FONT


@dataclass(frozen=True)
class Done:
    action: str
    title: str
    language: str = "nl"
    field_name: str | None = None


def _placeholders(stored: list[dict] | None) -> tuple[Placeholder, ...] | None:
    if stored is None:
        return None
    return tuple(Placeholder(p["number"], p["page"], tuple(p["box"])) for p in stored)


async def sign(
    pool: asyncpg.Pool,
    token: str,
    *,
    signing_pool: SigningPool,
    keyring: Keyring,
    outbox: Outbox,
    stamping: Stamping,
) -> Done:
    async with pool.acquire() as conn, conn.transaction():
        link = await _usable(conn, token, utcnow(), lock=True)
        document = await store.lock_document(conn, link["document_id"])
        signer = PersonRef.model_validate(link["signer"])
        on_behalf_of = PersonRef.model_validate(link["on_behalf_of"]) if link["on_behalf_of"] else None
        signed_at = utcnow()
        field_name = None
        pdf_sha256, revision = document["pdf_sha256"], document["revision"]
        if link["action"] == "sign":
            credentials = await keyring.credentials(conn, link["org"], signer)
            result = await signing_pool.sign(
                SigningJob(
                    pdf=await get_blob(conn, pdf_sha256),
                    key_der=credentials.key_der,
                    cert_der=credentials.cert_der,
                    chain_der=credentials.chain_der,
                    number=revision + 1,
                    stamp_text=stamp_text(signer, on_behalf_of, signed_at, stamping.timezone),
                    signer_name=signer.name,
                    reason=on_behalf_text(on_behalf_of) if on_behalf_of else "Ondertekend",
                    planned=link["signature_count"],
                    placeholders=_placeholders(document["placeholders"]),
                    tsa_url=stamping.tsa_url,
                    font_path=stamping.font_path,
                )
            )
            field_name = result.field_name
            pdf_sha256, revision = await put_blob(conn, result.pdf), revision + 1
            await store.save_signature(conn, link["document_id"], pdf_sha256, revision)
            if document["placeholders"] is None:
                await store.save_placeholders(
                    conn,
                    link["document_id"],
                    [{"number": p.number, "page": p.page, "box": list(p.box)} for p in result.placeholders],
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
    return Done(action=link["action"], title=link["title"], language=signer.language, field_name=field_name)


async def decline(pool: asyncpg.Pool, token: str, reason: str, *, outbox: Outbox) -> Done:
    async with pool.acquire() as conn, conn.transaction():
        link = await _usable(conn, token, utcnow(), lock=True)
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
    return Done(action="decline", title=link["title"], language=PersonRef.model_validate(link["signer"]).language)
