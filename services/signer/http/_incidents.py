"""The operators' incidents page (/p/ops/incidents): the open incidents `paraaf incidents` lists, each with the
buttons that fix it — reassign its request (a command to the router, which owns requests' routing and checks the
operator role again), resend its mail (the signer owns requests and their mails: done here, in one transaction),
withdraw its document (the portal's withdraw form) and dismiss it with a reason (``incident.dismissed``). Every
action names the signed-in operator, never a typed name; every form carries the session's CSRF token.

Dead letters are listed by their queues' depths, read with the signer's own broker user (a passive declare
needs no permission on the queue, so the portal gains no right to read or move them); replaying or dropping one
stays with `paraaf dlq`, which the page names. When the broker cannot be asked, the page says so.
"""

from collections.abc import Awaitable, Callable, Mapping
from uuid import UUID

import aio_pika
import structlog
from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from services.ops.incidents import Incident, incident_document, incidents_now, why_not_dismissed
from services.signer.handlers import resend_signing_mail
from services.signer.http._portal_auth import PortalAuth, Visitor, signed_in
from services.signer.portal_texts import portal_texts
from services.signer.store import PostgresSignerStore
from shared.contract import Command, ReassignRequest
from shared.errors import CodedError
from shared.events import Event, IncidentDismissed

__all__ = ["incident_routes"]

Act = Callable[[Request, Visitor], Awaitable[Response]]


async def _open(auth: PortalAuth, org: str, stuck_after: int, *, with_queues: bool = False) -> tuple[list[Incident], bool]:
    """What needs a person now in ``org``, as `paraaf incidents` lists it, in one consistent read (the signer may read
    the router's, intake's and audit's tables); with the dead-letter queues that keep messages when asked (the page,
    not its actions: a dead letter is never acted on here); and whether the broker could be asked."""
    queues = await _queue_depths(auth) if with_queues else None
    async with auth.deps.pool().acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        found = await incidents_now(
            conn, auth.deps.now(), queues or [], stuck_after=stuck_after, timezone=auth.deps.stamping.timezone, org=org
        )
        return found, queues is not None


async def _queue_depths(auth: PortalAuth) -> list[tuple[str, int | None]] | None:
    """Each dead-letter and holding queue with the messages it keeps; None when the broker cannot be asked."""
    if auth.deps.queue_depths is None:
        return None
    try:
        return await auth.deps.queue_depths()
    except (OSError, aio_pika.exceptions.AMQPError):
        structlog.get_logger().warning("queue depths unavailable for the incidents page", exc_info=True)
        return None


def _request_id(value: str) -> UUID | None:
    try:
        return UUID(value.strip())
    except ValueError:
        return None


def _missing(words: Mapping[str, str], reason: str, *, to: str | None = None) -> str | None:
    """What the form left empty, said so she can fill it in; None when nothing is missing."""
    if to is not None and not to.strip():
        return words["incident_need_person"]
    return None if reason.strip() else words["incident_need_reason"]


def _operator_only(auth: PortalAuth, csrf: str | None, act: Act) -> Act:
    """``act`` for a signed-in operator whose form is her own (CSRF); anyone else finds no such page."""

    async def checked(request: Request, visitor: Visitor) -> Response:
        person = visitor.person
        if not person.operator:
            return auth.not_found(request, visitor)
        if csrf is not None and not auth.csrf_ok(visitor, csrf):
            return auth.message(request, person.language, portal_texts(person.language)["csrf"], visitor=visitor, status=403)
        return await act(request, visitor)

    return checked


async def _publish(auth: PortalAuth, message: Event | Command) -> None:
    async with auth.deps.pool().acquire() as conn, conn.transaction():
        await auth.deps.outbox.add(conn, message)
    auth.deps.after_commit()


def _listing(router: APIRouter, auth: PortalAuth, stuck_after: int) -> None:
    @router.get("/p/ops/incidents", response_class=HTMLResponse)
    async def incidents_page(request: Request) -> Response:
        """The open incidents, oldest first, each with the actions that fix it (operators only)."""

        async def page(request: Request, visitor: Visitor) -> Response:
            found, queues_read = await _open(auth, visitor.person.org, stuck_after, with_queues=True)
            return auth.page(
                request, "ops_incidents.html", visitor.person.language, visitor=visitor, incidents=found, queues_read=queues_read
            )

        return await signed_in(auth, request, _operator_only(auth, None, page))


def _reassigning(router: APIRouter, auth: PortalAuth, stuck_after: int) -> None:
    @router.post("/p/ops/incidents/reassign", response_class=HTMLResponse)
    async def reassign(
        request: Request, csrf: str = Form(""), request_id: str = Form(""), to: str = Form(""), reason: str = Form("")
    ) -> Response:
        """Move an incident's waiting request to another person (the router checks the role and the person)."""

        async def act(request: Request, visitor: Visitor) -> Response:
            person, p = visitor.person, portal_texts(visitor.person.language)
            if missing := _missing(p, reason, to=to):
                return auth.message(request, person.language, missing, visitor=visitor, status=400)
            incident = next(
                (i for i in (await _open(auth, visitor.person.org, stuck_after))[0] if i.request_id == _request_id(request_id)),
                None,
            )
            if incident is None or incident.document_id is None:
                return auth.message(request, person.language, p["incident_gone"], visitor=visitor, status=409)
            await _publish(
                auth,
                ReassignRequest(
                    correlation_id=incident.document_id,
                    org=person.org,
                    request_id=incident.request_id,
                    to_person=to.strip()[:200],
                    reassigned_by=f"operator:{person.id}",
                    reason=reason.strip()[:2000],
                ),
            )
            return auth.message(
                request, person.language, p["reassign_sent"].format(person=to.strip()[:200]), visitor=visitor, status=202
            )

        return await signed_in(auth, request, _operator_only(auth, csrf, act))


def _resending(router: APIRouter, auth: PortalAuth) -> None:
    deps = auth.deps

    @router.post("/p/ops/incidents/resend", response_class=HTMLResponse)
    async def resend(request: Request, csrf: str = Form(""), request_id: str = Form(""), reason: str = Form("")) -> Response:
        """Mail an incident's waiting request again, to the address the directory holds now."""

        async def act(request: Request, visitor: Visitor) -> Response:
            person, p = visitor.person, portal_texts(visitor.person.language)
            if missing := _missing(p, reason):
                return auth.message(request, person.language, missing, visitor=visitor, status=400)
            wanted = _request_id(request_id)
            if wanted is None:
                return auth.message(request, person.language, p["incident_gone"], visitor=visitor, status=409)
            try:
                async with deps.pool().acquire() as conn, conn.transaction():
                    store = PostgresSignerStore(conn, deps.outbox, deps.keyring)
                    await resend_signing_mail(
                        store, wanted, org=person.org, by=f"operator:{person.id}", reason=reason.strip()[:2000], links=deps.links
                    )
            except CodedError as refusal:
                structlog.get_logger().info("mail not resent", code=refusal.code, reason=refusal.reason)
                return auth.message(
                    request, person.language, p["resend_refused"].format(reason=refusal.reason), visitor=visitor, status=409
                )
            deps.after_commit()
            return auth.message(request, person.language, p["resend_done"], visitor=visitor, status=202)

        return await signed_in(auth, request, _operator_only(auth, csrf, act))


def _dismissing(router: APIRouter, auth: PortalAuth, stuck_after: int) -> None:
    @router.post("/p/ops/incidents/dismiss", response_class=HTMLResponse)
    async def dismiss(request: Request, csrf: str = Form(""), incident: str = Form(""), reason: str = Form("")) -> Response:
        """Dismiss an open incident with a reason: it leaves the list; the audit log keeps who and why."""

        async def act(request: Request, visitor: Visitor) -> Response:
            person, p = visitor.person, portal_texts(visitor.person.language)
            if missing := _missing(p, reason):
                return auth.message(request, person.language, missing, visitor=visitor, status=400)
            found = next((i for i in (await _open(auth, visitor.person.org, stuck_after))[0] if i.id == incident), None)
            if found is None or why_not_dismissed(found):
                return auth.message(request, person.language, p["incident_gone"], visitor=visitor, status=409)
            await _publish(
                auth,
                IncidentDismissed(
                    correlation_id=incident_document(found.id, found.document_id),
                    org=person.org,
                    incident=found.id,
                    dismissed_by=f"operator:{person.id}",
                    reason=reason.strip()[:2000],
                ),
            )
            return auth.message(request, person.language, p["dismiss_done"], visitor=visitor, status=202)

        return await signed_in(auth, request, _operator_only(auth, csrf, act))


def incident_routes(auth: PortalAuth, *, stuck_after: int) -> APIRouter:
    router = APIRouter(tags=["operators"])
    _listing(router, auth, stuck_after)
    _reassigning(router, auth, stuck_after)
    _resending(router, auth)
    _dismissing(router, auth, stuck_after)
    return router
