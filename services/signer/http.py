"""The signing page behind each emailed link, and the signer's public endpoints:
the signed PDF for the submitter, the root certificate, and verification;
and, for the notifier alone (a key with the ``links`` scope), the internal
endpoint that makes the link a mail carries at the moment it is sent."""

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Literal
from uuid import UUID
from zoneinfo import ZoneInfo

import asyncpg
from fastapi import FastAPI, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel
from starlette.requests import ClientDisconnect

from services.signer import handlers, signing, store
from services.signer.i18n import texts
from services.signer.keys import Keyring
from services.signer.pades import SigningPool
from services.signer.render import RenderPool
from services.signer.stamps import on_behalf_text
from services.signer.tokens import csrf_token, csrf_valid, hash_token
from services.signer.verify import NotVerifiable, load_roots, verify_pdf
from shared.apikeys import Principal, require_scope
from shared.blobs import get_blob
from shared.events import PersonRef, utcnow
from shared.http import base_app, pdf_response
from shared.messaging import Outbox
from shared.workers import WorkerDied, WorkerPool, WorkerTimedOut

__all__ = ["LinkRequest", "RateLimit", "SignerHttp", "VerifyLimits", "build_http"]

CSRF_COOKIE = "paraaf_csrf"
# Pages are for people, not frames: no scripts, no embedding (a framed Sign button invites clickjacking).
_CSP = "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'"


class RateLimit:
    """At most ``per_minute`` requests per client address (a token bucket that refills continuously)."""

    def __init__(self, per_minute: float, burst: int | None = None) -> None:
        self._rate = per_minute / 60.0
        self._burst = float(burst or max(1, int(per_minute)))
        self._buckets: dict[str, tuple[float, float]] = {}

    def allow(self, address: str) -> float:
        """0 when allowed now, else the seconds until it would be."""
        now = time.monotonic()
        tokens, seen = self._buckets.get(address, (self._burst, now))
        tokens = min(self._burst, tokens + (now - seen) * self._rate)
        if len(self._buckets) > 10_000:
            self._buckets.clear()  # a flood of addresses must not grow this without end
        if tokens >= 1:
            self._buckets[address] = (tokens - 1, now)
            return 0.0
        self._buckets[address] = (tokens, now)
        return (1 - tokens) / self._rate


@dataclass(frozen=True)
class VerifyLimits:
    max_bytes: int = 64 * 1024 * 1024
    seconds: float = 30.0
    per_minute: float = 12.0


@dataclass(frozen=True)
class SignerHttp:
    pool: Callable[[], asyncpg.Pool]
    keyring: Keyring
    signing_pool: Callable[[], SigningPool]
    render_pool: Callable[[], RenderPool]
    verify_pool: Callable[[], WorkerPool]
    outbox: Outbox
    csrf_secret: bytes
    stamping: signing.Stamping
    links: handlers.Links
    org: str
    after_commit: Callable[[], None]
    secure_cookies: bool = False
    docs: bool = False
    verify_limits: VerifyLimits = field(default_factory=VerifyLimits)


class LinkRequest(BaseModel):
    """The notifier asks for the link of one mail it is about to send."""

    kind: Literal["signing", "download"]
    mail_id: UUID
    request_id: UUID | None = None  # signing
    document_id: UUID | None = None  # download
    person_id: str | None = None  # download


def build_http(deps: SignerHttp) -> FastAPI:
    app = base_app("signer", deps.pool, docs=deps.docs)
    pages = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
    verifications = RateLimit(deps.verify_limits.per_minute)

    def message(request: Request, language: str, heading_key: str, text: str, status: int) -> HTMLResponse:
        t = texts(language)
        response = pages.TemplateResponse(
            request, "message.html", {"lang": language, "heading": t[heading_key], "message": text}, status_code=status
        )
        return _protected(response)

    def refused(request: Request, error: signing.LinkRefused) -> HTMLResponse:
        language = error.language
        return message(request, language, "sign_title", texts(language)[f"gone_{error.code}"], error.status)

    async def language_of(token: str) -> str:
        link = await store.find_link(deps.pool(), hash_token(token))
        return PersonRef.model_validate(link["signer"]).language if link else "nl"

    def local(when: datetime) -> str:
        return when.astimezone(ZoneInfo(deps.stamping.timezone)).strftime("%d-%m-%Y %H:%M")

    async def document_of(link: asyncpg.Record) -> tuple[str, bytes]:
        pool = deps.pool()
        digest = await pool.fetchval("SELECT pdf_sha256 FROM signer.documents WHERE document_id = $1", link["document_id"])
        return digest, await get_blob(pool, digest)

    async def signing_page(
        request: Request, token: str, link: asyncpg.Record, *, error: str | None = None, status: int = 200
    ) -> HTMLResponse:
        signer = PersonRef.model_validate(link["signer"])
        t = texts(signer.language)
        nonce = request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(16)
        digest, pdf = await document_of(link)
        sizes = await deps.render_pool().page_sizes(digest, pdf)
        before = []
        for row in await store.signed_before(deps.pool(), link["document_id"]):
            person = PersonRef.model_validate(row["signer"])
            on_behalf = PersonRef.model_validate(row["on_behalf_of"]) if row["on_behalf_of"] else None
            before.append(
                {
                    "name": person.name,
                    "title": person.title,
                    "on_behalf": on_behalf_text(on_behalf, signer.language) if on_behalf else "",
                    "when": local(row["decided_at"]),
                }
            )
        response = pages.TemplateResponse(
            request,
            "sign.html",
            {
                "lang": signer.language,
                "t": t,
                "action": link["action"],
                "request": link,
                "error": error,
                "submitted_by": PersonRef.model_validate(link["submitted_by"]),
                "on_behalf_of": PersonRef.model_validate(link["on_behalf_of"]) if link["on_behalf_of"] else None,
                "signed_before": before,
                "pages": [
                    {"src": f"/s/{token}/pages/{number}.png", "width": width, "height": height}
                    for number, (width, height) in enumerate(sizes, start=1)
                ],
                "csrf": csrf_token(deps.csrf_secret, hash_token(token), nonce),
                "pdf_url": f"/s/{token}/document.pdf",
                "sign_url": f"/s/{token}/sign",
                "decline_url": f"/s/{token}/decline",
            },
            status_code=status,
        )
        response.set_cookie(
            CSRF_COOKIE, nonce, httponly=True, samesite="strict", secure=deps.secure_cookies or request.url.scheme == "https", path="/s/"
        )
        return _protected(response)

    @app.get("/s/{token}", response_class=HTMLResponse, tags=["signing"])
    async def open_signing_page(request: Request, token: str) -> HTMLResponse:
        """The page a signer opens from the mail: the document, Sign and Decline."""
        try:
            link = await signing.open_link(deps.pool(), token, utcnow())
        except signing.LinkRefused as error:
            return refused(request, error)
        return await signing_page(request, token, link)

    @app.get("/s/{token}/document.pdf", tags=["signing"])
    async def document_pdf(request: Request, token: str) -> Response:
        """The document as it stands now, for as long as the link is good."""
        try:
            link = await signing.open_link(deps.pool(), token, utcnow())
        except signing.LinkRefused as error:
            return refused(request, error)
        _, pdf = await document_of(link)
        return pdf_response(pdf, link["filename"], disposition="inline")

    @app.get("/s/{token}/pages/{number}.png", tags=["signing"])
    async def page_image(request: Request, token: str, number: int) -> Response:
        """Page ``number`` (from 1) of the document as it stands now, as a picture for the signing page."""
        try:
            link = await signing.open_link(deps.pool(), token, utcnow())
        except signing.LinkRefused as error:
            return refused(request, error)
        digest, pdf = await document_of(link)
        sizes = await deps.render_pool().page_sizes(digest, pdf)
        if not 1 <= number <= len(sizes):
            return Response(status_code=404)
        png = await deps.render_pool().page(digest, pdf, number - 1)
        return Response(png, media_type="image/png", headers={"Cache-Control": "private, no-store"})

    def csrf_ok(request: Request, token: str, presented: str) -> bool:
        return csrf_valid(deps.csrf_secret, hash_token(token), request.cookies.get(CSRF_COOKIE, ""), presented)

    @app.post("/s/{token}/sign", response_class=HTMLResponse, tags=["signing"])
    async def sign(request: Request, token: str, csrf: str = Form("")) -> HTMLResponse:
        """Sign (or approve) the request behind the link."""
        if not csrf_ok(request, token, csrf):
            language = await language_of(token)
            return message(request, language, "sign_title", texts(language)["csrf"], 403)
        try:
            done = await signing.sign(
                deps.pool(),
                token,
                signing_pool=deps.signing_pool(),
                keyring=deps.keyring,
                outbox=deps.outbox,
                stamping=deps.stamping,
            )
        except signing.LinkRefused as error:
            return refused(request, error)
        deps.after_commit()
        key = "signed_done" if done.action == "sign" else "approved_done"
        text = texts(done.language)[key].format(title=done.title)
        return message(request, done.language, f"{done.action}_title", text, 200)

    @app.post("/s/{token}/decline", response_class=HTMLResponse, tags=["signing"])
    async def decline(request: Request, token: str, csrf: str = Form(""), reason: str = Form("")) -> HTMLResponse:
        """Decline the request behind the link; a reason is required."""
        if not csrf_ok(request, token, csrf):
            language = await language_of(token)
            return message(request, language, "sign_title", texts(language)["csrf"], 403)
        if not reason.strip():
            try:
                link = await signing.open_link(deps.pool(), token, utcnow())
            except signing.LinkRefused as error:
                return refused(request, error)
            language = PersonRef.model_validate(link["signer"]).language
            return await signing_page(request, token, link, error=texts(language)["reason_required"], status=422)
        try:
            done = await signing.decline(deps.pool(), token, reason.strip(), outbox=deps.outbox)
        except signing.LinkRefused as error:
            return refused(request, error)
        deps.after_commit()
        text = texts(done.language)["declined_done"].format(title=done.title)
        return message(request, done.language, "sign_title", text, 200)

    @app.get("/d/{token}", tags=["documents"])
    async def download(request: Request, token: str) -> Response:
        """The signed PDF, for the submitter the completion mail was sent to, while the link is good."""
        pool = deps.pool()
        found = await store.find_download(pool, hash_token(token))
        if found is None:
            return message(request, "nl", "sign_title", texts("nl")["gone_unknown"], 404)
        if found["revoked_at"] is not None:
            return message(request, "nl", "sign_title", texts("nl")["gone_revoked"], 410)
        if found["expires_at"] <= utcnow():
            return message(request, "nl", "sign_title", texts("nl")["gone_expired"], 410)
        return pdf_response(await get_blob(pool, found["pdf_sha256"]), found["filename"])

    @app.post("/internal/links", status_code=201, tags=["internal"])
    async def make_link(body: LinkRequest, key: Principal = require_scope(deps.pool, "links")) -> dict:
        """For the notifier: the link for one mail, made now (earlier links of the same request stop working)."""
        async with deps.pool().acquire() as conn, conn.transaction():
            try:
                if body.kind == "signing" and body.request_id is not None:
                    made = await handlers.mint_signing_link(conn, body.request_id, body.mail_id, links=deps.links)
                elif body.kind == "download" and body.document_id is not None and body.person_id:
                    made = await handlers.mint_download_link(
                        conn, body.document_id, body.person_id, body.mail_id, links=deps.links
                    )
                else:
                    raise HTTPException(422, "a signing link needs request_id; a download link document_id and person_id")
            except handlers.LinkGone as gone:
                raise HTTPException(410, str(gone)) from None
        return {"url": made.url, "expires_at": made.expires_at.isoformat()}

    @app.get("/ca.pem", tags=["trust"])
    async def root_certificate() -> Response:
        """The root certificate that signer certificates chain to (trust it to validate signatures)."""
        async with deps.pool().acquire() as conn:
            cert_pem, _ = await deps.keyring.authority(conn, deps.org)
        return Response(cert_pem, media_type="application/x-pem-file")

    @app.post("/verify", tags=["trust"])
    async def verify(
        request: Request,
        format: str = Query("json", pattern="^(json|text)$", description="`json` or `text`"),  # noqa: A002
    ) -> Response:
        """Validate every signature of the PDF in the request body (raw, or a multipart field `file`).

        Signatures are trusted when they chain to this installation's root
        certificate. The report says per signature who signed, on whose
        behalf, when, whether it is intact and trusted, and what changed
        after it; `ok` is false when any signature fails (or there is none).
        """
        limits = deps.verify_limits
        wait = verifications.allow(request.client.host if request.client else "?")
        if wait:
            return JSONResponse(
                {"error": "too many verifications from your address; try again shortly"},
                429,
                headers={"Retry-After": str(int(wait) + 1)},
            )
        too_large = JSONResponse({"error": f"the PDF is larger than {limits.max_bytes // 2**20} MB"}, 413)
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limits.max_bytes):
            return too_large  # refused before a byte of the body is read
        try:
            pdf = await _pdf_from(request, limits.max_bytes)
        except _TooLarge:
            return too_large
        if pdf is None:
            return JSONResponse({"error": "send a PDF as the request body or as the multipart field `file`"}, 400)
        async with deps.pool().acquire() as conn:
            cert_pem, _ = await deps.keyring.authority(conn, deps.org)
        roots = tuple(c.dump() for c in load_roots(cert_pem.encode()))
        try:
            report = await deps.verify_pool().run(verify_pdf, pdf, roots, timeout=limits.seconds)
        except NotVerifiable as exc:
            return JSONResponse({"error": str(exc)}, 400)
        except (WorkerTimedOut, WorkerDied):
            return JSONResponse({"error": "this PDF could not be verified within the time and memory allowed"}, 422)
        if format == "text" or "text/plain" in request.headers.get("accept", ""):
            return PlainTextResponse(report.to_text(deps.stamping.timezone))
        return JSONResponse(report.to_dict())

    return app


def _protected(page: HTMLResponse) -> HTMLResponse:
    """Headers every HTML page of the signer carries (set here rather than in a middleware, which costs ~1 ms a request)."""
    page.headers["Content-Security-Policy"] = _CSP
    page.headers["X-Frame-Options"] = "DENY"
    page.headers["X-Content-Type-Options"] = "nosniff"
    page.headers["Cache-Control"] = "no-store"
    return page


class _TooLarge(Exception):
    pass


async def _body(request: Request, cap: int) -> bytes:
    """The request body, read as it streams in and abandoned once it passes ``cap`` bytes."""
    body = bytearray()
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > cap:
                raise _TooLarge
    except ClientDisconnect:
        pass
    return bytes(body)


async def _pdf_from(request: Request, cap: int) -> bytes | None:
    body = await _body(request, cap)
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        replayed = False

        async def receive() -> dict:
            nonlocal replayed
            if replayed:
                return {"type": "http.disconnect"}
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        form = await Request(request.scope, receive).form()
        upload = form.get("file")
        return await upload.read() if upload is not None and hasattr(upload, "read") else None
    return body or None
