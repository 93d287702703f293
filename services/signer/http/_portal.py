"""The portal's pages for a signed-in person: her lists (to sign, submitted by
her, signed by her, her department's, search), each document's page with its
PDF and trail, submitting a document, withdrawing one, and absences.

Every document shown, listed or downloaded has passed the visibility policy
(shared/visibility.py, through services/signer/portal.py); a document she may
not see answers exactly like one that does not exist (404).
"""

from uuid import UUID

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from services.signer.http._portal_auth import PortalAuth, Visitor, signed_in
from services.signer.http._portal_forms import absence_routes, upload_routes
from services.signer.portal import PortalDocument, PortalReader
from services.signer.portal_texts import portal_texts
from services.signer.sessions import Sessions
from shared.contract import WithdrawDocument
from shared.http import pdf_response
from shared.visibility import Access

__all__ = ["portal_routes"]

async def _document(auth: PortalAuth, visitor: Visitor, document_id: UUID) -> tuple[PortalDocument | None, Access]:
    async with auth.deps.pool().acquire() as conn:
        document = await PortalReader(conn).document(visitor.person.org, document_id)
    if document is None:
        return None, Access.NONE
    return document, document.seen_by(visitor.person)


def _lists(router: APIRouter, auth: PortalAuth) -> None:
    @router.get("/p/", response_class=HTMLResponse)
    async def home(request: Request) -> Response:
        return await signed_in(auth, request, _to_sign_first)

    for which in ("submitted", "signed", "department", "search"):
        _list_route(router, auth, which)


def _list_route(router: APIRouter, auth: PortalAuth, which: str) -> None:
    async def page(request: Request, visitor: Visitor) -> Response:
        query = request.query_params.get("q", "").strip()[:200]
        async with auth.deps.pool().acquire() as conn:
            reader = PortalReader(conn)
            documents = await reader.documents(visitor.person, which, query) if which != "search" or query else []  # type: ignore[arg-type]
            uploads = await reader.uploads(visitor.person) if which == "submitted" else []
        return auth.page(
            request, "portal_list.html", visitor.person.language, visitor=visitor, which=which, documents=documents,
            uploads=uploads, query=query,
        )

    async def listing(request: Request) -> Response:
        return await signed_in(auth, request, page)

    listing.__doc__ = {
        "submitted": "The documents she submitted, where each waits, and her uploads not yet accepted.",
        "signed": "The documents she signed or approved.",
        "department": "The non-confidential documents of the groups her department belongs to.",
        "search": "Documents she may see whose title holds the words asked for.",
    }[which]
    router.add_api_route(f"/p/{which}", listing, methods=["GET"], response_class=HTMLResponse, name=f"portal_{which}")


async def _to_sign_first(request: Request, visitor: Visitor) -> Response:
    """The portal opens on what waits for her."""
    return RedirectResponse("/p/to-sign", status_code=303)


def _documents(router: APIRouter, auth: PortalAuth) -> None:
    @router.get("/p/documents/{document_id}", response_class=HTMLResponse)
    async def document_page(request: Request, document_id: UUID) -> Response:
        """A document with its PDF and trail; an operator sees the trail of one she may not read, without its title."""

        async def page(request: Request, visitor: Visitor) -> Response:
            document, seen = await _document(auth, visitor, document_id)
            if document is None or seen == Access.NONE:
                return auth.not_found(request, visitor)
            async with auth.deps.pool().acquire() as conn:
                trail = await PortalReader(conn).trail(document_id)
            person = visitor.person
            may_withdraw = document.status == "active" and (person.id == document.submitted_by.id or person.operator)
            return auth.page(
                request, "portal_document.html", person.language, visitor=visitor, document=document, trail=trail,
                full=seen >= Access.FULL, may_withdraw=may_withdraw,
            )

        return await signed_in(auth, request, page)

    @router.get("/p/documents/{document_id}/document.pdf")
    async def document_pdf(request: Request, document_id: UUID, download: bool = False) -> Response:
        """The document as it stands now (signed so far), for those who may read it."""

        async def page(request: Request, visitor: Visitor) -> Response:
            document, seen = await _document(auth, visitor, document_id)
            if document is None or seen < Access.FULL:
                return auth.not_found(request, visitor)
            async with auth.deps.pool().acquire() as conn:
                pdf = await PortalReader(conn).latest_pdf(document)
            return pdf_response(pdf, document.filename, disposition="attachment" if download else "inline")

        return await signed_in(auth, request, page)

    _withdraw(router, auth)


def _withdraw(router: APIRouter, auth: PortalAuth) -> None:
    deps = auth.deps

    @router.post("/p/documents/{document_id}/withdraw", response_class=HTMLResponse)
    async def withdraw(request: Request, document_id: UUID, csrf: str = Form(""), reason: str = Form("")) -> Response:
        """Withdraw a document: its submitter, or an operator."""

        async def act(request: Request, visitor: Visitor) -> Response:
            person, p = visitor.person, portal_texts(visitor.person.language)
            if not auth.csrf_ok(visitor, csrf):
                return auth.message(request, person.language, p["csrf"], visitor=visitor, status=403)
            document, seen = await _document(auth, visitor, document_id)
            if document is None or seen == Access.NONE:
                return auth.not_found(request, visitor)
            submitter = person.id == document.submitted_by.id
            if document.status != "active" or not (submitter or person.operator) or not reason.strip():
                return auth.message(request, person.language, p["not_allowed"], visitor=visitor, status=403)
            by = person.id if submitter else f"operator:{person.id}"
            command = WithdrawDocument(correlation_id=document_id, org=person.org, withdrawn_by=by, reason=reason.strip()[:2000])
            async with deps.pool().acquire() as conn, conn.transaction():
                await deps.outbox.add(conn, command)
            deps.after_commit()
            return auth.message(request, person.language, p["withdraw_sent"], visitor=visitor, status=202)

        return await signed_in(auth, request, act)


def _requests(router: APIRouter, auth: PortalAuth) -> None:
    deps = auth.deps

    @router.get("/p/requests/{request_id}")
    async def open_request(request: Request, request_id: UUID) -> Response:
        """From "To sign" to the signing page every signer knows: a short-lived link of her own request."""

        async def go(request: Request, visitor: Visitor) -> Response:
            person = visitor.person
            async with deps.pool().acquire() as conn, conn.transaction():
                mine = {r.request_id: r for r in await PortalReader(conn).to_sign(person)}.get(request_id)
                document = await PortalReader(conn).document(person.org, mine.document_id) if mine else None
                if mine is None or document is None or document.seen_by(person) < Access.FULL:
                    return auth.not_found(request, visitor)
                token = await Sessions(conn).signing_link_for(request_id, person.id, deps.now())
            return RedirectResponse(f"/s/{token}", status_code=303)

        return await signed_in(auth, request, go)


def portal_routes(auth: PortalAuth) -> APIRouter:
    router = APIRouter(tags=["portal"])
    _lists(router, auth)  # "To sign" is with bulk signing (_bulk.py)
    _documents(router, auth)
    _requests(router, auth)
    router.include_router(upload_routes(auth))
    router.include_router(absence_routes(auth))
    return router
