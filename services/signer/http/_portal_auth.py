"""The portal's front door: who the visitor is (her session), the pages that
sign her in — with the city's OIDC provider when one is configured, else by a
one-time link mailed to her directory address — and sign-out.

Cookies: ``paraaf_session`` (the session, HttpOnly, SameSite=Lax, Secure on
https, path /p), ``paraaf_oidc`` (the state of an OIDC round trip under way,
10 minutes) and ``paraaf_pcsrf`` (binds the sign-in forms to the browser).
Every form carries a CSRF token: HMAC of the session (or that cookie).
"""

import hashlib
import hmac
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import structlog
from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from services.signer.http._deps import SignerHttpDeps
from services.signer.http._pages import _TEMPLATES, _local, _protected
from services.signer.i18n import texts
from services.signer.oidc import OidcClient, SignInFailed
from services.signer.portal import Person, PortalReader
from services.signer.portal_texts import portal_texts
from services.signer.sessions import SIGN_IN_TTL, Session, SessionPolicy, Sessions
from services.signer.uploads import PortalSubmitter
from shared.contract import LANGUAGES, SendSignInLink
from shared.events import PersonRef

__all__ = ["PortalAuth", "PortalConfig", "Visitor", "sign_in_routes", "signed_in"]

SESSION_COOKIE = "paraaf_session"
OIDC_COOKIE = "paraaf_oidc"
FORM_COOKIE = "paraaf_pcsrf"
NEXT_COOKIE = "paraaf_next"


@dataclass(frozen=True)
class PortalConfig:
    """What the portal adds to the signer's HTTP dependencies."""

    oidc: OidcClient | None = None
    oidc_match: str = "email"  # the claim is compared with the directory's `email` or `id`
    sessions: SessionPolicy = field(default_factory=SessionPolicy)
    submitter: PortalSubmitter = field(default_factory=lambda: PortalSubmitter(None, ""))
    upload_max_bytes: int = 25 * 1_048_576


@dataclass(frozen=True)
class Visitor:
    """A signed-in person and her session."""

    session: Session
    person: Person


def _language(request: Request) -> str:
    """The visitor's language before she is known: the first of ours her browser asks for."""
    for part in request.headers.get("accept-language", "").split(","):
        code = part.split(";")[0].strip().lower()[:2]
        if code in LANGUAGES:
            return code
    return LANGUAGES[0]


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a portal path only, never another site."""
    if target and target.startswith("/p/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/p/"


class PortalAuth:
    """Finds the visitor behind a request, renders the portal's pages, and checks its forms."""

    def __init__(self, deps: SignerHttpDeps, config: PortalConfig) -> None:
        self.deps, self.config = deps, config
        self.templates = Jinja2Templates(directory=str(_TEMPLATES))
        self.templates.env.globals["local"] = lambda when: _local(when, deps.stamping.timezone)
        self._csrf_key = hmac.new(deps.csrf_secret, b"paraaf-portal", hashlib.sha256).digest()

    @property
    def secure(self) -> bool:
        return self.deps.secure_cookies

    def org_name(self, request: Request) -> str | None:
        """The name of the organisation whose portal this is (by the Host it is asked on), for the top of its pages."""
        portals = self.deps.portals
        return portals.name_of(self.deps.org_at(request)) if portals is not None else None

    async def visitor(self, request: Request) -> Visitor | None:
        """The signed-in person, when the request carries a live session of this portal's org."""
        token = request.cookies.get(SESSION_COOKIE, "")
        if not token:
            return None
        async with self.deps.pool().acquire() as conn:
            session = await Sessions(conn).find(token, self.deps.now(), self.config.sessions)
            if session is None or session.org != self.deps.org_at(request):  # another city's session: not signed in here
                return None
            person = await PortalReader(conn).person(session.org, session.person_id)
        return Visitor(session, person) if person else None

    def csrf(self, visitor: Visitor) -> str:
        return hmac.new(self._csrf_key, visitor.session.id_hash, hashlib.sha256).hexdigest()

    def csrf_ok(self, visitor: Visitor, presented: str) -> bool:
        return hmac.compare_digest(self.csrf(visitor), presented or "")

    def form_csrf(self, nonce: str) -> str:
        return hmac.new(self._csrf_key, b"form:" + nonce.encode(), hashlib.sha256).hexdigest()

    def form_csrf_ok(self, request: Request, presented: str) -> bool:
        nonce = request.cookies.get(FORM_COOKIE, "")
        return bool(nonce) and hmac.compare_digest(self.form_csrf(nonce), presented or "")

    def page(self, request: Request, template: str, language: str, *, visitor: Visitor | None = None,
             status: int = 200, **context: Any) -> HTMLResponse:
        """A portal page in ``language``, with the menu when someone is signed in."""
        common = {"lang": language, "p": portal_texts(language), "t": texts(language), "visitor": visitor,
                  "csrf": self.csrf(visitor) if visitor else "", "path": request.url.path, "org_name": self.org_name(request)}
        response = self.templates.TemplateResponse(request, template, {**common, **context}, status_code=status)
        return _protected(response)

    def message(self, request: Request, language: str, text: str, *, visitor: Visitor | None = None, status: int = 200) -> HTMLResponse:
        return self.page(request, "portal_message.html", language, visitor=visitor, status=status, message=text)

    def not_found(self, request: Request, visitor: Visitor) -> HTMLResponse:
        """The same answer for a document that does not exist and one she may not see."""
        language = visitor.person.language
        return self.message(request, language, portal_texts(language)["not_found"], visitor=visitor, status=404)

    def sign_in_first(self, request: Request) -> Response:
        return RedirectResponse(f"/p/sign-in?next={quote(request.url.path)}", status_code=303)

    def signed_in(self, request: Request, token: str) -> Response:
        """Off to where she was going (or her portal), with her new session."""
        response = RedirectResponse(safe_next(request.cookies.get(NEXT_COOKIE)), status_code=303)
        response.delete_cookie(NEXT_COOKIE, path="/p")
        self.set_session(response, token)
        return response

    def set_session(self, response: Response, token: str) -> None:
        response.set_cookie(
            SESSION_COOKIE, token, max_age=int(self.config.sessions.absolute.total_seconds()), httponly=True,
            samesite="lax", secure=self.secure, path="/p",
        )


Page = Callable[[Request, "Visitor"], Awaitable[Response]]


async def signed_in(auth: PortalAuth, request: Request, page: Page) -> Response:
    """``page`` for the signed-in visitor; a GET without a session goes to sign-in, anything else is refused (401)."""
    visitor = await auth.visitor(request)
    if visitor is None:
        if request.method == "GET":
            return auth.sign_in_first(request)
        return HTMLResponse("Sign in first.", status_code=401)
    return await page(request, visitor)



def _sign_in_form(router: APIRouter, auth: PortalAuth) -> None:
    deps = auth.deps

    @router.get("/p/sign-in", response_class=HTMLResponse)
    async def sign_in_page(request: Request, next: str = "/p/", sent: bool = False) -> HTMLResponse:
        """Sign in: with the city's account (OIDC), or by a link mailed to the directory address."""
        nonce = request.cookies.get(FORM_COOKIE) or secrets.token_urlsafe(16)
        page = auth.page(
            request, "portal_signin.html", _language(request), oidc=auth.config.oidc is not None, sent=sent,
            form_csrf=auth.form_csrf(nonce),
        )
        page.set_cookie(FORM_COOKIE, nonce, httponly=True, samesite="strict", secure=auth.secure, path="/p")
        if next != "/p/":  # where she was going, for after sign-in (in this browser)
            page.set_cookie(NEXT_COOKIE, safe_next(next), max_age=1800, httponly=True, samesite="lax", secure=auth.secure, path="/p")
        return page

    @router.post("/p/sign-in", response_class=HTMLResponse)
    async def ask_for_link(request: Request, email: str = Form(""), csrf: str = Form("")) -> Response:
        """Mail a one-time sign-in link, if the address is in the directory (the answer is the same either way)."""
        language = _language(request)
        if auth.config.oidc is not None:
            return auth.message(request, language, portal_texts(language)["not_allowed"], status=404)
        if not auth.form_csrf_ok(request, csrf):
            return auth.message(request, language, portal_texts(language)["csrf"], status=403)
        org = deps.org_at(request)
        async with deps.pool().acquire() as conn, conn.transaction():
            person = await PortalReader(conn).person_by_email(org, email[:320])
            attempt = await Sessions(conn).new_attempt(org, person.id, deps.now()) if person else None
            if person and attempt:
                recipient = PersonRef(id=person.id, name=person.name, email=person.email, language=person.language)
                command = SendSignInLink(correlation_id=attempt, org=org, recipient=recipient, expires_at=deps.now() + SIGN_IN_TTL)
                await deps.outbox.add(conn, command)
        deps.after_commit()
        structlog.get_logger().info("sign-in link asked for", known=person is not None, sent=attempt is not None)
        return RedirectResponse("/p/sign-in?sent=1", status_code=303)


def _mailed_link(router: APIRouter, auth: PortalAuth) -> None:
    deps = auth.deps

    @router.get("/p/sign-in/{token}", response_class=HTMLResponse)
    async def sign_in_link(request: Request, token: str) -> HTMLResponse:
        """The link from the mail: a button, so that a mail scanner fetching the link does not use it up."""
        nonce = request.cookies.get(FORM_COOKIE) or secrets.token_urlsafe(16)
        page = auth.page(request, "portal_signin_link.html", _language(request), form_csrf=auth.form_csrf(nonce), token=token)
        page.set_cookie(FORM_COOKIE, nonce, httponly=True, samesite="strict", secure=auth.secure, path="/p")
        return page

    @router.post("/p/sign-in/{token}", response_class=HTMLResponse)
    async def use_sign_in_link(request: Request, token: str, csrf: str = Form("")) -> Response:
        """Sign in with the mailed link; it works once."""
        language = _language(request)
        if not auth.form_csrf_ok(request, csrf):
            return auth.message(request, language, portal_texts(language)["csrf"], status=403)
        async with deps.pool().acquire() as conn, conn.transaction():
            sessions = Sessions(conn)
            found = await sessions.redeem(token, deps.now())
            if found is None or found[0] != deps.org_at(request):
                return auth.message(request, language, portal_texts(language)["signin_link_gone"], status=410)
            session_token = await sessions.start(found[0], found[1], "mail", deps.now())
        return auth.signed_in(request, session_token)


def _oidc(router: APIRouter, auth: PortalAuth) -> None:
    deps = auth.deps

    @router.get("/p/auth/start")
    async def start_oidc(request: Request) -> Response:
        """Off to the city's identity provider, with PKCE and a nonce."""
        if auth.config.oidc is None:
            return Response(status_code=404)
        try:
            login = await auth.config.oidc.start()
        except (SignInFailed, OSError) as exc:
            structlog.get_logger().warning("OIDC provider unreachable", error=repr(exc))
            language = _language(request)
            return auth.message(request, language, portal_texts(language)["signin_failed"], status=503)
        async with deps.pool().acquire() as conn:
            await Sessions(conn).begin_oidc(login.state, deps.org_at(request), login.code_verifier, login.nonce, deps.now())
        response = RedirectResponse(login.url, status_code=303)
        response.set_cookie(OIDC_COOKIE, login.state, max_age=600, httponly=True, samesite="lax", secure=auth.secure, path="/p/auth")
        return response

    @router.get("/p/auth/callback", response_class=HTMLResponse)
    async def finish_oidc(request: Request, code: str = "", state: str = "") -> Response:
        """Back from the provider: the state must be this browser's, the code good, the ID token hold; then she is in."""
        language = _language(request)
        if auth.config.oidc is None or not state or not hmac.compare_digest(state, request.cookies.get(OIDC_COOKIE, "")):
            return auth.message(request, language, portal_texts(language)["signin_failed"], status=400)
        async with deps.pool().acquire() as conn:
            login = await Sessions(conn).take_oidc(state, deps.now())
        if login is None or not code:
            return auth.message(request, language, portal_texts(language)["signin_failed"], status=400)
        try:
            claim = await auth.config.oidc.identity(code, login.code_verifier, login.nonce)
        except (SignInFailed, OSError) as exc:
            structlog.get_logger().warning("OIDC sign-in refused", error=str(exc))
            return auth.message(request, language, portal_texts(language)["signin_failed"], status=403)
        return await _oidc_session(request, auth, login.org, claim)


async def _oidc_session(request: Request, auth: PortalAuth, org: str, claim: str) -> Response:
    deps = auth.deps
    async with deps.pool().acquire() as conn, conn.transaction():
        reader = PortalReader(conn)
        person = await (reader.person_by_email(org, claim) if auth.config.oidc_match == "email" else reader.person(org, claim))
        if person is None:
            structlog.get_logger().warning("OIDC sign-in of someone not in the directory", org=org)
            language = _language(request)
            return auth.message(request, language, portal_texts(language)["signin_unknown"], status=403)
        token = await Sessions(conn).start(org, person.id, "oidc", deps.now())
    response = auth.signed_in(request, token)
    response.delete_cookie(OIDC_COOKIE, path="/p/auth")
    return response


def _sign_out(router: APIRouter, auth: PortalAuth) -> None:
    @router.post("/p/sign-out", response_class=HTMLResponse)
    async def sign_out(request: Request, csrf: str = Form("")) -> Response:
        """End the session here and now."""
        visitor = await auth.visitor(request)
        language = visitor.person.language if visitor else _language(request)
        if visitor is not None:
            if not auth.csrf_ok(visitor, csrf):
                return auth.message(request, language, portal_texts(language)["csrf"], visitor=visitor, status=403)
            async with auth.deps.pool().acquire() as conn:
                await Sessions(conn).end(request.cookies.get(SESSION_COOKIE, ""), auth.deps.now())
        response = auth.message(request, language, portal_texts(language)["signed_out"])
        response.delete_cookie(SESSION_COOKIE, path="/p")
        return response


def sign_in_routes(auth: PortalAuth) -> APIRouter:
    router = APIRouter(tags=["portal"])
    _sign_in_form(router, auth)
    _mailed_link(router, auth)
    _oidc(router, auth)
    _sign_out(router, auth)
    return router
