"""The public check page (/check, no sign-in): a citizen types the code and
secret printed on a signed document and sees its title, who signed it, when,
on whose behalf, whether it is valid; downloads the original; or offers her
own copy, which is compared with the original and, when it differs, has its
signatures checked by the verification endpoint's validator.

Every form posts the code and secret again, so no page holds a session and
each answer is judged and counted on its own (services/signer/check.py). A
wrong pair is answered the same whichever part was wrong; a code whose check
digit fails is a typo and is said to be one, without looking anything up.
"""

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.templating import Jinja2Templates

from services.signer import check
from services.signer.check import CheckedDocument, CheckLimits
from services.signer.check_texts import check_texts
from services.signer.http._deps import SignerHttpDeps
from services.signer.http._pages import _protected
from services.signer.http._verify import RateLimit, capped_form
from services.signer.verification import read_code, read_secret
from services.signer.verify import NotVerifiable, load_roots, verify_pdf
from shared.contract import LANGUAGES
from shared.http import pdf_response
from shared.workers import WorkerDied, WorkerTimedOut

__all__ = ["check_routes"]

_TEMPLATES = Path(__file__).resolve().parents[1] / "templates"


@dataclass
class _View:
    """What one answer of the check page shows."""

    lang: str
    code: str = ""
    secret: str = ""
    error: str | None = None
    document: CheckedDocument | None = None
    comparison: str | None = None  # same | earlier | tampered | a key of an error text
    problems: list[str] = field(default_factory=list)


def _language(request: Request, asked: str | None) -> str:
    if asked in LANGUAGES:
        return asked  # type: ignore[return-value]
    for part in request.headers.get("accept-language", "").split(","):
        code = part.split(";")[0].strip().lower()[:2]
        if code in LANGUAGES:
            return code
    return LANGUAGES[0]


class _CheckPages:
    def __init__(self, deps: SignerHttpDeps, limits: CheckLimits) -> None:
        self.deps, self.limits = deps, limits
        self.key = deps.stamping.check_key
        self.comparisons = RateLimit(deps.verify_limits.per_minute)
        self._templates = Jinja2Templates(directory=str(_TEMPLATES))
        self._zone = ZoneInfo(deps.stamping.timezone)

    def _local(self, when: datetime) -> str:
        return when.astimezone(self._zone).strftime("%d-%m-%Y %H:%M")

    def render(self, request: Request, view: _View, status: int = 200) -> HTMLResponse:
        t = check_texts(view.lang)
        context: dict[str, Any] = {"lang": view.lang, "t": t, "view": view, "languages": LANGUAGES}
        if view.document is not None:
            context["document"] = self._document(view.document, t)
        page = self._templates.TemplateResponse(request, "check.html", context, status_code=status)
        return _protected(page)

    def _document(self, found: CheckedDocument, t: dict[str, str]) -> dict[str, Any]:
        done = sum(1 for s in found.signatures if s.action == "sign")
        if found.status == "active":
            status = t["status_active"].format(done=done, planned=found.planned) if found.planned else t["status_active_unknown"]
        else:
            status = t.get(f"status_{found.status}", found.status)
        return {
            "title": found.title, "status": status, "valid": found.valid, "hidden": found.hidden,
            "signatures": [
                {
                    "how": t["signed_by"] if s.action == "sign" else t["approved_by"],
                    "name": s.signer.name, "title": s.signer.title,
                    "on_behalf": t["on_behalf_of"].format(who=s.on_behalf_of.title or s.on_behalf_of.name) if s.on_behalf_of else "",
                    "when": t["at"].format(when=self._local(s.at)),
                }
                for s in found.signatures
            ],
        }

    async def lookup(self, request: Request, view: _View) -> HTMLResponse | CheckedDocument:
        """The document behind the view's code and secret, or the page that says why not (typo, wrong, too many)."""
        t = check_texts(view.lang)
        code = read_code(view.code)
        if code is None:
            return self.render(request, _View(view.lang, view.code, error=t["typo"]), 422)
        scope = check.client_scope(request.client.host if request.client else "?")
        async with self.deps.pool().acquire() as conn:
            counted = await check.attempt(conn, scope, self.limits)
            if counted.limited_until is not None:
                error = t["limited"].format(until=self._local(counted.limited_until))
                return self.render(request, _View(view.lang, view.code, error=error), 429)
            found = await check.find(conn, self.key, code, read_secret(view.secret))
            if found is not None:
                await check.forgive(conn, scope, self.limits)
                return found
        left = max(0, self.limits.per_address - counted.used)
        error = f"{t['no_match']} {t['attempts_left'].format(count=left)}"
        return self.render(request, _View(view.lang, view.code, error=error), 404)

    async def compare(self, found: CheckedDocument, pdf: bytes) -> tuple[str, list[str]]:
        """same | earlier | tampered (with what the validator found) | not_pdf."""
        digest = hashlib.sha256(pdf).hexdigest()
        if digest == found.pdf_sha256:
            return "same", []
        async with self.deps.reader() as store:
            versions = await store.version_digests(found.document_id, found.org)
            root = await store.authority_certificate(found.org)
        if digest in versions:
            return "earlier", []
        roots = tuple(c.dump() for c in load_roots(root.encode()))
        try:
            report = await self.deps.verify_pool().run(verify_pdf, pdf, roots, timeout=self.deps.verify_limits.seconds)
        except NotVerifiable:
            return "not_pdf", []
        except (WorkerTimedOut, WorkerDied):
            return "tampered", []
        return "tampered", [*report.problems, *(f"{s.signer}: {p}" for s in report.signatures for p in s.problems)]


    async def file_answer(self, request: Request) -> HTMLResponse:
        form = await capped_form(request, self.deps.verify_limits.max_bytes)
        asked = form.get("lang") if form is not None else None
        view = _View(_language(request, asked if isinstance(asked, str) else None))
        if form is None:
            view.error = check_texts(view.lang)["too_large"]
            return self.render(request, view, 413)
        view.code, view.secret = str(form.get("code", ""))[:64], str(form.get("secret", ""))[:64]
        found = await self.lookup(request, view)
        if isinstance(found, HTMLResponse):
            return found
        view.document = found
        upload = form.get("file")
        pdf = await upload.read() if upload is not None and hasattr(upload, "read") else b""
        if not pdf:
            view.comparison = "no_file"
        elif self.comparisons.allow(request.client.host if request.client else "?"):
            view.comparison = "busy"
        else:
            view.comparison, view.problems = await self.compare(found, pdf)
        return self.render(request, view)


def check_routes(deps: SignerHttpDeps) -> APIRouter:
    router = APIRouter(tags=["check"])
    pages = _CheckPages(deps, deps.check_limits)

    @router.get("/check", response_class=HTMLResponse)
    async def form(request: Request, lang: str | None = None) -> HTMLResponse:
        """The check page: a form for the code and the secret printed on a signed document."""
        return pages.render(request, _View(_language(request, lang)))

    @router.post("/check", response_class=HTMLResponse)
    async def checked(request: Request, code: str = Form(""), secret: str = Form(""), lang: str = Form("")) -> HTMLResponse:
        """The document behind a code and secret: title, signatures, validity (wrong pairs are rate-limited)."""
        view = _View(_language(request, lang), code[:64], secret[:64])
        found = await pages.lookup(request, view)
        if isinstance(found, HTMLResponse):
            return found
        view.document = found
        return pages.render(request, view)

    @router.post("/check/document")
    async def document(request: Request, code: str = Form(""), secret: str = Form(""), lang: str = Form("")) -> Response:
        """The original signed PDF behind a code and secret (not for a confidential or shielded document)."""
        view = _View(_language(request, lang), code[:64], secret[:64])
        found = await pages.lookup(request, view)
        if isinstance(found, HTMLResponse):
            return found
        if found.hidden:
            view.document = found
            return pages.render(request, view, 403)
        async with deps.reader() as store:
            return pdf_response(await store.blob(found.pdf_sha256), found.filename)

    @router.post("/check/file", response_class=HTMLResponse)
    async def compared(request: Request) -> HTMLResponse:
        """A citizen's copy compared with the original behind a code and secret (multipart: code, secret, lang, file)."""
        return await pages.file_answer(request)

    return router
