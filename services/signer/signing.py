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
from shared.blobs import get_blob, put_blob, register_version
from shared.events import PersonRef, SignatureDeclined, Signed, utcnow
from shared.messaging import Outbox

__all__ = ["Done", "LinkRefused", "Stamping", "check_link", "decline", "open_link", "sign"]


class LinkRefused(Exception):
    """The link cannot be used; ``code`` names why (the page says it in the reader's language)."""

    def __init__(self, code: str, status: int = 410, detail: str | None = None, language: str = "nl") -> None:
        super().__init__(code)
        self.code = code
        self.status = status
        self.detail = detail
        self.language = language  # the link's person's, to say it in their words


def check_link(link: asyncpg.Record | None, now: datetime) -> asyncpg.Record:
    """The rules a link must pass before it shows a form or takes a signature."""
    if link is None:
        raise LinkRefused("unknown", status=404)
    signer = PersonRef.model_validate(link["signer"])
    if link["person_id"] != signer.id:
        raise LinkRefused("unknown", status=404)  # a token is only ever good for the person it was made for
    code = _refusal(link, now)
    if code is not None:
        raise LinkRefused(code, status=409 if code == "not_yet" else 410, detail=link["status_reason"], language=signer.language)
    return link


def _refusal(link: asyncpg.Record, now: datetime) -> str | None:
    if link["status"] == "reassigned":
        return "reassigned"
    if link["document_status"] in ("completed", "declined", "withdrawn"):
        return link["document_status"]
    if link["status"] == "cancelled":
        return "cancelled"
    if link["status"] == "declined":
        return "request_declined"
    if link["status"] == "signed" or link["used_at"] is not None:
        return "used"
    if link["revoked_at"] is not None:
        return "revoked"
    if link["expires_at"] <= now:
        return "expired"
    # Steps run in order. The router only asks the next step once the last one
    # is done, but the signer checks too, so no link can jump the queue.
    if link.get("earlier_open"):
        return "not_yet"
    return None


async def open_link(conn: asyncpg.Connection | asyncpg.Pool, token: str, now: datetime) -> asyncpg.Record:
    return check_link(await store.find_link(conn, hash_token(token)), now)


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
        # One round trip checks the link and locks token, request and document.
        link = check_link(await store.find_link(conn, hash_token(token), lock=True), utcnow())
        signer = PersonRef.model_validate(link["signer"])
        on_behalf_of = PersonRef.model_validate(link["on_behalf_of"]) if link["on_behalf_of"] else None
        signed_at = utcnow()
        field_name = None
        pdf_sha256, revision = link["document_pdf_sha256"], link["document_revision"]
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
                    placeholders=_placeholders(link["document_placeholders"]),
                    tsa_url=stamping.tsa_url,
                    font_path=stamping.font_path,
                )
            )
            field_name = result.field_name
            pdf_sha256, revision = await put_blob(conn, result.pdf), revision + 1
            await register_version(conn, link["document_id"], revision, link["org"], pdf_sha256)
            await store.record_signature(
                conn,
                document_id=link["document_id"],
                pdf_sha256=pdf_sha256,
                revision=revision,
                placeholders=[{"number": p.number, "page": p.page, "box": list(p.box)} for p in result.placeholders],
                request_id=link["request_id"],
                token_hash=link["token_hash"],
                field_name=field_name,
                at=signed_at,
            )
        else:  # an approval (paraaf) is recorded, not signed into the PDF
            await store.mark_decided(
                conn, request_id=link["request_id"], token_hash=link["token_hash"], status="signed", at=signed_at
            )
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
        link = check_link(await store.find_link(conn, hash_token(token), lock=True), utcnow())
        signer = PersonRef.model_validate(link["signer"])
        await store.mark_decided(
            conn, request_id=link["request_id"], token_hash=link["token_hash"], status="declined", at=utcnow(),
            reason=reason,
        )
        await outbox.add(
            conn,
            SignatureDeclined(
                correlation_id=link["document_id"],
                org=link["org"],
                request_id=link["request_id"],
                step=link["step"],
                signer=signer,
                reason=reason,
            ),
        )
    structlog.get_logger().info("request declined", document_id=str(link["document_id"]))
    return Done(action="decline", title=link["title"], language=signer.language)
