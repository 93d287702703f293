"""What happens behind a signing link: check it, sign (or approve), decline.

A signature is one transaction: the document row is locked (signatures on one
document are made one after the other, each on top of the last), the PDF is
signed in a worker process, and the new version, the request's new state, the
spent token and the ``signature.signed`` event are committed together. The
link is checked against the services' clock; the signature carries real time.
"""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import structlog

from services.signer.domain import SigningLink, SigningRequest, check_link, decline_reason
from services.signer.fonts import DEFAULT_FONT
from services.signer.keys import Credentials
from services.signer.pades import SigningJob, SigningResult
from services.signer.stamps import on_behalf_text, stamp_text
from services.signer.store import SignerStore
from services.signer.tokens import hash_token
from services.signer.verification import footer_text, new_code, new_secret, secret_hash
from shared.clock import wall_clock
from shared.events import SignatureDeclined, Signed

__all__ = ["Decided", "PdfSigner", "Stamping", "decline", "open_link", "open_page", "sign"]


@dataclass(frozen=True)
class Stamping:
    """How signatures look and what they carry beyond the signer's own: local time, a timestamp, the font,
    and (with ``check_url``) the verification code on every page, its secret hashed under ``check_key``."""

    timezone: str = "Europe/Brussels"
    tsa_url: str | None = None
    font_path: str = DEFAULT_FONT
    tsa_roots_der: tuple[bytes, ...] = ()  # PARAAF_TSA_ROOTS
    check_url: str | None = None
    check_key: bytes = b""


@dataclass(frozen=True)
class Decided:
    """What the signer decided, for the page that thanks them."""

    action: str
    title: str
    language: str = "nl"
    field_name: str | None = None
    redrawn: "Redrawn | None" = None  # a signature: what its new version changed in the pages' pictures


@dataclass(frozen=True)
class Redrawn:
    """Version ``pdf_sha256`` is version ``before`` with only the pages ``changed`` (0-based) drawn differently."""

    pdf_sha256: str
    before: str
    changed: frozenset[int]


@dataclass(frozen=True)
class _Version:
    pdf_sha256: str
    revision: int
    field_name: str | None = None
    redrawn: Redrawn | None = None


class PdfSigner(Protocol):
    async def sign(self, job: SigningJob) -> SigningResult: ...


async def open_link(store: SignerStore, token: str, now: datetime) -> SigningLink:
    return check_link(await store.find_link(hash_token(token)), now)


async def open_page(store: SignerStore, token: str, now: datetime) -> tuple[SigningLink, list[SigningRequest]]:
    """:func:`open_link` and who signed the document before, for its signing page, in one round trip."""
    link, signed = await store.find_link_and_signed(hash_token(token))
    return check_link(link, now), signed


async def _locked_link(store: SignerStore, token: str, now: datetime) -> SigningLink:
    """One round trip checks the link and locks token, request and document."""
    return check_link(await store.find_link(hash_token(token), lock=True), now)


def _signing_job(
    link: SigningLink, credentials: Credentials, pdf: bytes, signed_at: datetime, stamping: Stamping,
    crls: tuple[bytes, ...], footer: str | None,
) -> SigningJob:
    request, document = link.request, link.document
    signer, on_behalf_of = request.signer, request.on_behalf_of
    return SigningJob(
        pdf=pdf, key_der=credentials.key_der, cert_der=credentials.cert_der, chain_der=credentials.chain_der,
        number=document.revision + 1, stamp_text=stamp_text(signer, on_behalf_of, signed_at, stamping.timezone),
        signer_name=signer.name, reason=on_behalf_text(on_behalf_of) if on_behalf_of else "Ondertekend",
        planned=request.signature_count, placeholders=document.placeholders, tsa_url=stamping.tsa_url,
        font_path=stamping.font_path, crls_der=crls, tsa_roots_der=stamping.tsa_roots_der,
        completes=request.signature_count is not None and document.revision + 1 >= request.signature_count, footer=footer,
        token=credentials.token, token_key_id=credentials.token_key_id,
    )


async def _verification_footer(store: SignerStore, link: SigningLink, stamping: Stamping) -> str | None:
    """For the document's first signature: a new code and secret, kept (the secret only hashed), to be printed."""
    if stamping.check_url is None or link.document.revision != 0:
        return None
    request = link.request
    for _ in range(5):  # 10^15 codes: a second draw is already unlikely
        code, secret = new_code(), new_secret()
        if await store.register_verification_code(request.document_id, request.org, code, secret_hash(stamping.check_key, code, secret)):
            return footer_text(request.signer.language, stamping.check_url, code, secret)
    raise RuntimeError("no free verification code in 5 draws")


async def _sign_pdf(store: SignerStore, link: SigningLink, signed_at: datetime, pdf_signer: PdfSigner, stamping: Stamping) -> _Version:
    """The document's next version, signed by the link's person, stored and recorded."""
    request = link.request
    credentials = await store.credentials(request.org, request.signer)
    pdf = await store.blob(link.document.pdf_sha256)
    # With a TSA the signature is B-LT: the CRL as it stands now goes into the document (built here, not fetched).
    crls = (await store.crl(request.org),) if stamping.tsa_url else ()
    footer = await _verification_footer(store, link, stamping)
    result = await pdf_signer.sign(_signing_job(link, credentials, pdf, signed_at, stamping, crls, footer))
    if footer and not result.footer_stamped:  # signed before it came to Paraaf: a code no page shows is no use
        await store.forget_verification_code(request.document_id)
    revision = link.document.revision + 1
    digest = await store.record_signature(
        link, pdf=result.pdf, revision=revision, placeholders=result.placeholders, field_name=result.field_name, at=signed_at
    )
    changed = result.changed_pages
    redrawn = Redrawn(digest, link.document.pdf_sha256, changed) if changed is not None else None
    return _Version(digest, revision, result.field_name, redrawn)


async def _approve(store: SignerStore, link: SigningLink, at: datetime) -> _Version:
    """An approval (paraaf) is recorded, not signed into the PDF."""
    await store.mark_decided(link, status="signed", at=at)
    return _Version(link.document.pdf_sha256, link.document.revision)


def _signed(link: SigningLink, version: _Version, signed_at: datetime) -> Signed:
    request = link.request
    return Signed(
        correlation_id=request.document_id, org=request.org, request_id=request.request_id, step=request.step,
        action=request.action, signer=request.signer, on_behalf_of=request.on_behalf_of, signed_at=signed_at,
        pdf_sha256=version.pdf_sha256, revision=version.revision, field_name=version.field_name,
    )


async def sign(
    store: SignerStore, token: str, *, now: datetime, pdf_signer: PdfSigner, stamping: Stamping,
    admit: Callable[[SigningLink], Awaitable[None]] | None = None,
) -> Decided:
    """Sign (or approve) the request behind the link, in the caller's transaction; ``admit`` raises when the
    link, good by its own rules and locked, must still not be used (the visibility policy)."""
    link = await _locked_link(store, token, now)
    if admit is not None:
        await admit(link)
    request, signed_at = link.request, wall_clock()  # the signature's own time is true time
    if request.action == "sign":
        version = await _sign_pdf(store, link, signed_at, pdf_signer, stamping)
    else:
        version = await _approve(store, link, signed_at)
    await store.publish(_signed(link, version, signed_at))
    structlog.get_logger().info(
        "request signed", document_id=str(request.document_id), request_id=str(request.request_id), action=request.action
    )
    return Decided(
        action=request.action, title=request.title, language=request.signer.language, field_name=version.field_name,
        redrawn=version.redrawn,
    )


async def decline(store: SignerStore, token: str, reason: str, *, now: datetime) -> Decided:
    """Decline the request behind the link, in the caller's transaction; a reason is required."""
    link = await _locked_link(store, token, now)
    request, given = link.request, decline_reason(link, reason)
    await store.mark_decided(link, status="declined", at=now, reason=given)
    await store.publish(
        SignatureDeclined(
            correlation_id=request.document_id, org=request.org, request_id=request.request_id, step=request.step,
            signer=request.signer, reason=given,
        )
    )
    structlog.get_logger().info("request declined", document_id=str(request.document_id))
    return Decided(action="decline", title=request.title, language=request.signer.language)
