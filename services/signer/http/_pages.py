"""The signer's HTML pages: the signing page (its context built from a link and
what was signed before, apart from the routes), and the one-line message pages
that say a link cannot be used, a form expired, or thank the signer."""

import secrets
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from services.signer.domain import LinkRefused, SigningLink, SigningRequest
from services.signer.i18n import texts
from services.signer.stamps import on_behalf_text
from services.signer.tokens import csrf_token, hash_token

__all__ = ["CSRF_COOKIE", "Pages", "SigningView", "signing_context"]

CSRF_COOKIE = "paraaf_csrf"
# Pages are for people, not frames: no scripts, no embedding (a framed Sign button invites clickjacking).
_CSP = "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'"
_TEMPLATES = Path(__file__).resolve().parents[1] / "templates"


def _protected(page: HTMLResponse) -> HTMLResponse:
    """Headers every HTML page of the signer carries (set here rather than in a middleware, which costs ~1 ms a request)."""
    page.headers["Content-Security-Policy"] = _CSP
    page.headers["X-Frame-Options"] = "DENY"
    page.headers["X-Content-Type-Options"] = "nosniff"
    page.headers["Cache-Control"] = "no-store"
    return page


@dataclass(frozen=True)
class SigningView:
    """What the signing page shows besides the link: the pages' sizes and who signed before."""

    token: str
    link: SigningLink
    page_sizes: list[tuple[int, int]]
    signed_before: list[SigningRequest]
    csrf: str
    error: str | None = None


def _local(when: datetime | None, timezone: str) -> str:
    return when.astimezone(ZoneInfo(timezone)).strftime("%d-%m-%Y %H:%M") if when else ""


def _signed_before(signed: list[SigningRequest], language: str, timezone: str) -> list[dict[str, str]]:
    return [
        {
            "name": r.signer.name,
            "title": r.signer.title,
            "on_behalf": on_behalf_text(r.on_behalf_of, language) if r.on_behalf_of else "",
            "when": _local(r.decided_at, timezone),
        }
        for r in signed
    ]


def signing_context(view: SigningView, timezone: str) -> dict[str, Any]:
    """The signing page's template context."""
    request, token = view.link.request, view.token
    language = request.signer.language
    return {
        "lang": language, "t": texts(language), "action": request.action, "asked": request, "error": view.error,
        "submitted_by": request.submitted_by, "on_behalf_of": request.on_behalf_of,
        "signed_before": _signed_before(view.signed_before, language, timezone),
        "pages": [
            {"src": f"/s/{token}/pages/{number}.png", "width": width, "height": height}
            for number, (width, height) in enumerate(view.page_sizes, start=1)
        ],
        "csrf": view.csrf, "pdf_url": f"/s/{token}/document.pdf", "sign_url": f"/s/{token}/sign",
        "decline_url": f"/s/{token}/decline",
    }


class Pages:
    """Renders the signer's pages, each with the headers that protect it."""

    def __init__(self, *, csrf_secret: bytes, timezone: str, secure_cookies: bool) -> None:
        self._templates = Jinja2Templates(directory=str(_TEMPLATES))
        self._csrf_secret = csrf_secret
        self._timezone = timezone
        self._secure_cookies = secure_cookies

    def message(self, request: Request, language: str, heading_key: str, text: str, status: int) -> HTMLResponse:
        context = {"lang": language, "heading": texts(language)[heading_key], "message": text}
        return _protected(self._templates.TemplateResponse(request, "message.html", context, status_code=status))

    def refused(self, request: Request, error: LinkRefused) -> HTMLResponse:
        return self.message(request, error.language, "sign_title", texts(error.language)[f"gone_{error.code}"], error.status)

    def nonce(self, request: Request) -> str:
        """The browser's CSRF cookie, or a new one."""
        return request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(16)

    def csrf(self, token: str, nonce: str) -> str:
        return csrf_token(self._csrf_secret, hash_token(token), nonce)

    def signing(self, request: Request, view: SigningView, nonce: str, status: int = 200) -> HTMLResponse:
        context = signing_context(view, self._timezone)
        response = self._templates.TemplateResponse(request, "sign.html", context, status_code=status)
        secure = self._secure_cookies or request.url.scheme == "https"
        response.set_cookie(CSRF_COOKIE, nonce, httponly=True, samesite="strict", secure=secure, path="/s/")
        return _protected(response)
