"""The signing page behind each emailed link, and the signer's public endpoints."""

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import asyncpg
from fastapi import FastAPI, Form, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.templating import Jinja2Templates

from services.signer import signing, store
from services.signer.i18n import texts
from services.signer.keys import Keyring
from services.signer.pades import SigningPool
from services.signer.tokens import csrf_token, csrf_valid, hash_token
from shared.blobs import get_blob
from shared.events import PersonRef, utcnow
from shared.http import base_app
from shared.messaging import Outbox

__all__ = ["SignerHttp", "build_http"]

CSRF_COOKIE = "paraaf_csrf"


@dataclass(frozen=True)
class SignerHttp:
    pool: Callable[[], asyncpg.Pool]
    keyring: Keyring
    signing_pool: Callable[[], SigningPool]
    outbox: Outbox
    csrf_secret: bytes
    timezone: str
    org: str
    after_commit: Callable[[], None]


def build_http(deps: SignerHttp) -> FastAPI:
    app = base_app("signer", deps.pool)
    pages = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))

    def message(request: Request, language: str, heading_key: str, text: str, status: int) -> HTMLResponse:
        t = texts(language)
        return pages.TemplateResponse(
            request, "message.html", {"lang": language, "heading": t[heading_key], "message": text}, status_code=status
        )

    def refused(request: Request, error: signing.LinkRefused, language: str = "nl") -> HTMLResponse:
        return message(request, language, "sign_title", texts(language)[f"gone_{error.code}"], error.status)

    async def language_of(token: str) -> str:
        link = await store.find_link(deps.pool(), hash_token(token))
        return PersonRef.model_validate(link["signer"]).language if link else "nl"

    @app.get("/s/{token}", response_class=HTMLResponse, tags=["signing"])
    async def signing_page(request: Request, token: str) -> HTMLResponse:
        """The page a signer opens from the mail: the document, Sign and Decline."""
        try:
            link = await signing.open_link(deps.pool(), token, utcnow())
        except signing.LinkRefused as error:
            return refused(request, error, await language_of(token))
        signer = PersonRef.model_validate(link["signer"])
        nonce = request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(16)
        before = await store.signed_before(deps.pool(), link["document_id"])
        response = pages.TemplateResponse(
            request,
            "sign.html",
            {
                "lang": signer.language,
                "t": texts(signer.language),
                "action": link["action"],
                "request": link,
                "submitted_by": PersonRef.model_validate(link["submitted_by"]),
                "on_behalf_of": PersonRef.model_validate(link["on_behalf_of"]) if link["on_behalf_of"] else None,
                "signed_before": [PersonRef.model_validate(r["signer"]) for r in before],
                "csrf": csrf_token(deps.csrf_secret, hash_token(token), nonce),
                "pdf_url": f"/s/{token}/document.pdf",
                "sign_url": f"/s/{token}/sign",
                "decline_url": f"/s/{token}/decline",
            },
        )
        response.set_cookie(
            CSRF_COOKIE, nonce, httponly=True, samesite="strict", secure=request.url.scheme == "https", path="/s/"
        )
        response.headers["Cache-Control"] = "no-store"
        return response

    @app.get("/s/{token}/document.pdf", tags=["signing"])
    async def document_pdf(request: Request, token: str) -> Response:
        """The document as it stands now, for as long as the link is good."""
        try:
            link = await signing.open_link(deps.pool(), token, utcnow())
        except signing.LinkRefused as error:
            return refused(request, error, await language_of(token))
        pool = deps.pool()
        digest = await pool.fetchval("SELECT pdf_sha256 FROM signer.documents WHERE document_id = $1", link["document_id"])
        return Response(
            await get_blob(pool, digest),
            media_type="application/pdf",
            headers={
                "Content-Disposition": f'inline; filename="{link["filename"]}"',
                "Cache-Control": "no-store",
            },
        )

    def csrf_ok(request: Request, token: str, presented: str) -> bool:
        return csrf_valid(deps.csrf_secret, hash_token(token), request.cookies.get(CSRF_COOKIE, ""), presented)

    @app.post("/s/{token}/sign", response_class=HTMLResponse, tags=["signing"])
    async def sign(request: Request, token: str, csrf: str = Form("")) -> HTMLResponse:
        """Sign (or approve) the request behind the link."""
        language = await language_of(token)
        if not csrf_ok(request, token, csrf):
            return message(request, language, "sign_title", texts(language)["csrf"], 403)
        try:
            done = await signing.sign(
                deps.pool(),
                token,
                signing_pool=deps.signing_pool(),
                keyring=deps.keyring,
                outbox=deps.outbox,
                timezone=deps.timezone,
            )
        except signing.LinkRefused as error:
            return refused(request, error, language)
        deps.after_commit()
        key = "signed_done" if done.action == "sign" else "approved_done"
        return message(request, language, f"{done.action}_title", texts(language)[key].format(title=done.title), 200)

    @app.post("/s/{token}/decline", response_class=HTMLResponse, tags=["signing"])
    async def decline(request: Request, token: str, csrf: str = Form(""), reason: str = Form("")) -> HTMLResponse:
        """Decline the request behind the link; a reason is required."""
        language = await language_of(token)
        if not csrf_ok(request, token, csrf):
            return message(request, language, "sign_title", texts(language)["csrf"], 403)
        if not reason.strip():
            return message(request, language, "sign_title", texts(language)["reason_required"], 422)
        try:
            done = await signing.decline(deps.pool(), token, reason.strip(), outbox=deps.outbox)
        except signing.LinkRefused as error:
            return refused(request, error, language)
        deps.after_commit()
        return message(request, language, "sign_title", texts(language)["declined_done"].format(title=done.title), 200)

    @app.get("/d/{token}", tags=["documents"])
    async def download(request: Request, token: str) -> Response:
        """The signed PDF, for the submitter the completion mail was sent to, while the link is good."""
        pool = deps.pool()
        found = await store.find_download(pool, hash_token(token))
        if found is None:
            return message(request, "nl", "sign_title", texts("nl")["gone_unknown"], 404)
        if found["expires_at"] <= utcnow():
            return message(request, "nl", "sign_title", texts("nl")["gone_expired"], 410)
        return Response(
            await get_blob(pool, found["pdf_sha256"]),
            media_type="application/pdf",
            headers={
                "Content-Disposition": f'attachment; filename="{found["filename"]}"',
                "Cache-Control": "no-store",
            },
        )

    @app.get("/ca.pem", tags=["trust"])
    async def root_certificate() -> Response:
        """The root certificate that signer certificates chain to (trust it to validate signatures)."""
        async with deps.pool().acquire() as conn:
            cert_pem, _ = await deps.keyring.authority(conn, deps.org)
        return Response(cert_pem, media_type="application/x-pem-file")

    return app
