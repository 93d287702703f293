"""The portal's forms that make something happen: submitting a document (it
enters through intake as source ``portal``, like any system's submission, and
its refusals come back as sentences) and registering an absence (one's own, a
manager's for her reports, an admin's for anyone). Each records the signed-in person, never a typed name.
"""

import re
from dataclasses import dataclass
from datetime import date, datetime, time
from uuid import UUID, uuid4
from zoneinfo import ZoneInfo

import structlog
from fastapi import APIRouter, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from services.signer.http._portal_auth import PortalAuth, Visitor, signed_in
from services.signer.portal import Person, PortalReader
from services.signer.portal_texts import portal_texts
from services.signer.uploads import PORTAL_SOURCE, UploadsClosed, portal_external_ref
from shared.contract import RegisterAbsence

__all__ = ["absence_routes", "upload_routes"]

_SIGNER_SLOTS = 3


@dataclass(frozen=True)
class UploadForm:
    """The upload form as the person filled it in."""

    form_id: UUID
    title: str
    flow: str
    signers: tuple[str, ...]
    confidential: bool
    filename: str


async def _read_pdf(file: UploadFile | None, limit: int) -> bytes | None:
    """The file, or None when there is none; at most ``limit`` + 1 bytes are read."""
    if file is None or not file.filename:
        return None
    return await file.read(limit + 1)


def _refusal(form: UploadForm, pdf: bytes | None, limit: int, flows: set[str], people: set[str]) -> str | None:
    """What is wrong with the form (a key of the portal's texts), before anything is sent."""
    problems = [
        (not form.title, "err_missing_title"),
        (pdf is None or not pdf, "err_missing_pdf"),
        (pdf is not None and len(pdf) > limit, "err_too_large"),
        (pdf is not None and 0 < len(pdf) <= limit and not pdf.lstrip()[:5] == b"%PDF-", "err_not_pdf"),
        (bool(form.flow) and bool(form.signers), "err_both_routes"),
        (not form.flow and not form.signers, "err_missing_route"),
        (bool(form.flow) and form.flow not in flows, "err_unknown_flow"),
        (any(s not in people for s in form.signers), "err_missing_route"),
    ]
    return next((key for wrong, key in problems if wrong), None)


def _command(person: Person, form: UploadForm, pdf: bytes) -> dict:
    """The SubmitDocument a system would send, for this person."""
    route: dict = (
        {"flow": form.flow} if form.flow else {"steps": [{"action": "sign", "signers": [f"person:{s}"]} for s in form.signers]}
    )
    return {
        "source": PORTAL_SOURCE, "external_ref": portal_external_ref(str(form.form_id)), "title": form.title, **route,
        "submitted_by": person.id, "confidential": form.confidential, "filename": form.filename, "pdf": pdf,
        "language": person.language, "metadata": {"uploaded_through": "portal"}, "org": person.org,
    }


def _filename(name: str | None) -> str:
    base = (name or "document.pdf").replace("\\", "/").rsplit("/", 1)[-1].strip()[:200] or "document.pdf"
    return base if base.lower().endswith(".pdf") else base + ".pdf"


def _upload_page(router: APIRouter, auth: PortalAuth) -> None:
    @router.get("/p/upload", response_class=HTMLResponse)
    async def upload_form(request: Request) -> Response:
        """Pick a PDF, a flow of her departments or signers from the directory, and whether it is confidential."""

        async def page(request: Request, visitor: Visitor) -> Response:
            return await _render_upload(auth, request, visitor, None, None)

        return await signed_in(auth, request, page)

    @router.get("/p/uploads/{form_id}", response_class=HTMLResponse)
    async def upload_status(request: Request, form_id: UUID) -> Response:
        """Where her upload is: being checked (the page refreshes itself), refused and why, or on its way (its page)."""

        async def page(request: Request, visitor: Visitor) -> Response:
            async with auth.deps.pool().acquire() as conn:
                upload = await PortalReader(conn).upload(visitor.person, form_id)
            if upload is None:
                return auth.not_found(request, visitor)
            if upload.document_id is not None and upload.refusal is None:
                return RedirectResponse(f"/p/documents/{upload.document_id}", status_code=303)
            return auth.page(request, "portal_upload_status.html", visitor.person.language, visitor=visitor, upload=upload)

        return await signed_in(auth, request, page)


async def _render_upload(
    auth: PortalAuth, request: Request, visitor: Visitor, form: UploadForm | None, error: str | None, status: int = 200
) -> Response:
    async with auth.deps.pool().acquire() as conn:
        reader = PortalReader(conn)
        flows, people = await reader.flows_for(visitor.person), await reader.people(visitor.person.org)
    mb = round(auth.config.upload_max_bytes / 1_048_576)
    return auth.page(
        request, "portal_upload.html", visitor.person.language, visitor=visitor, flows=flows, people=people, form=form,
        form_id=form.form_id if form else uuid4(), slots=range(1, _SIGNER_SLOTS + 1), mb=mb,
        error=portal_texts(visitor.person.language)[error].format(mb=mb) if error else None, status=status,
    )


def _upload_submit(router: APIRouter, auth: PortalAuth) -> None:
    @router.post("/p/upload", response_class=HTMLResponse)
    async def submit_upload(
        request: Request, csrf: str = Form(""), form_id: UUID = Form(...), title: str = Form(""), flow: str = Form(""),
        signer_1: str = Form(""), signer_2: str = Form(""), signer_3: str = Form(""), confidential: str = Form(""),
        pdf: UploadFile | None = None,
    ) -> Response:
        """Send the document through intake as source `portal`; then follow it on its status page."""
        signers = tuple(dict.fromkeys(s for s in (signer_1, signer_2, signer_3) if s))
        form = UploadForm(form_id, title.strip()[:500], flow.strip(), signers, bool(confidential), _filename(pdf.filename if pdf else None))

        async def act(request: Request, visitor: Visitor) -> Response:
            if not auth.csrf_ok(visitor, csrf):
                p = portal_texts(visitor.person.language)
                return auth.message(request, visitor.person.language, p["csrf"], visitor=visitor, status=403)
            content = await _read_pdf(pdf, auth.config.upload_max_bytes)
            return await _send_upload(auth, request, visitor, form, content)

        return await signed_in(auth, request, act)


async def _send_upload(auth: PortalAuth, request: Request, visitor: Visitor, form: UploadForm, pdf: bytes | None) -> Response:
    person, deps = visitor.person, auth.deps
    async with deps.pool().acquire() as conn:
        reader = PortalReader(conn)
        flows = {key for key, _, _ in await reader.flows_for(person)}
        people = {p.id for p in await reader.people(person.org)}
    if not auth.config.submitter.open:
        return await _render_upload(auth, request, visitor, form, "err_uploads_closed", 503)
    if (wrong := _refusal(form, pdf, auth.config.upload_max_bytes, flows, people)) is not None:
        return await _render_upload(auth, request, visitor, form, wrong, 422)
    assert pdf is not None
    try:
        async with deps.pool().acquire() as conn, conn.transaction():
            external_ref = portal_external_ref(str(form.form_id))
            if await PortalReader(conn).record_upload(person, form.form_id, PORTAL_SOURCE, external_ref, form.title):
                await auth.config.submitter.submit(_command(person, form, pdf), message_id=str(form.form_id))
    except (UploadsClosed, OSError, RuntimeError, TimeoutError) as exc:  # not sent, not recorded: she can send it again
        structlog.get_logger().warning("portal upload not sent", error=repr(exc))
        return await _render_upload(auth, request, visitor, form, "err_try_again", 503)
    structlog.get_logger().info("portal upload sent", form_id=str(form.form_id), person=person.id)
    return RedirectResponse(f"/p/uploads/{form.form_id}", status_code=303)


def _day(value: str, timezone: str) -> datetime | None:
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value.strip()):
        return None
    try:
        return datetime.combine(date.fromisoformat(value.strip()), time(0), ZoneInfo(timezone))
    except ValueError:
        return None


def _absence_pages(router: APIRouter, auth: PortalAuth) -> None:
    @router.get("/p/absences", response_class=HTMLResponse)
    async def absences(request: Request) -> Response:
        """Her coming absences (an admin: everyone's), and the form to register one."""

        async def page(request: Request, visitor: Visitor) -> Response:
            return await _render_absences(auth, request, visitor)

        return await signed_in(auth, request, page)

    @router.post("/p/absences", response_class=HTMLResponse)
    async def add_absence(
        request: Request, csrf: str = Form(""), person: str = Form(""), starts: str = Form(""), ends: str = Form(""),
        note: str = Form(""),
    ) -> Response:
        """Register an absence: for herself, for those she manages, or for anyone when she is an admin. The router moves
        the work when it starts."""

        async def act(request: Request, visitor: Visitor) -> Response:
            return await _register_absence(auth, request, visitor, csrf, person.strip() or visitor.person.id, starts, ends, note)

        return await signed_in(auth, request, act)


async def _render_absences(auth: PortalAuth, request: Request, visitor: Visitor, *, done: str | None = None,
                           error: str | None = None, status: int = 200) -> Response:
    person = visitor.person
    async with auth.deps.pool().acquire() as conn:
        reader = PortalReader(conn)
        mine = None if person.admin else [person.id, *sorted(person.reports)]
        listed = await reader.absences(person.org, mine, auth.deps.now())
        everyone = await reader.people(person.org) if person.admin or person.reports else []
        people = [p for p in everyone if person.may_register_absence_of(p.id)]
    return auth.page(request, "portal_absences.html", person.language, visitor=visitor, absences=listed, people=people,
                     done=done, error=error, status=status)


async def _register_absence(
    auth: PortalAuth, request: Request, visitor: Visitor, csrf: str, who: str, starts: str, ends: str, note: str
) -> Response:
    me, deps = visitor.person, auth.deps
    p = portal_texts(me.language)
    if not auth.csrf_ok(visitor, csrf):
        return auth.message(request, me.language, p["csrf"], visitor=visitor, status=403)
    if not me.may_register_absence_of(who):
        return await _render_absences(auth, request, visitor, error=p["absence_not_allowed"], status=403)
    async with deps.pool().acquire() as conn:
        subject = await PortalReader(conn).person(me.org, who)
    starts_at, ends_at = _day(starts, deps.stamping.timezone), _day(ends, deps.stamping.timezone)
    if subject is None or starts_at is None or ends_at is None or ends_at <= starts_at:
        return await _render_absences(auth, request, visitor, error=p["absence_bad_dates"], status=422)
    command = RegisterAbsence(
        correlation_id=uuid4(), org=me.org, person_id=who, starts_at=starts_at, ends_at=ends_at, registered_by=me.id,
        note=note.strip()[:500],
    )
    async with deps.pool().acquire() as conn, conn.transaction():
        await deps.outbox.add(conn, command)
    deps.after_commit()
    return await _render_absences(auth, request, visitor, done=p["absence_added"].format(name=subject.name), status=202)


def upload_routes(auth: PortalAuth) -> APIRouter:
    router = APIRouter(tags=["portal"])
    _upload_page(router, auth)
    _upload_submit(router, auth)
    return router


def absence_routes(auth: PortalAuth) -> APIRouter:
    router = APIRouter(tags=["portal"])
    _absence_pages(router, auth)
    return router
