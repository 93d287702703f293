"""The operators' pages: every document of her org with the filters of
``paraaf documents`` (/p/ops/documents), a document's timeline from the audit
log (/p/ops/documents/{id}), and the live view (/p/ops/live) fed by a
Server-Sent Events stream of the audit log (/p/ops/events).

Only a signed-in operator gets them; anyone else signed in gets the portal's
answer for a page she may not see (404), and the stream answers 401 to a
request without a session. Operators see metadata: titles pass the
visibility policy per operator and per document (services/signer/operator.py),
and nothing here serves a PDF.

The stream's event ids are the audit log's seq: EventSource sends the last
one back when it reconnects (Last-Event-ID), and the stream goes on from
there, so nothing is missed and nothing repeated. A comment every
``HEARTBEAT`` seconds keeps proxies from cutting an idle stream; the session
(not touched by the stream, so it still expires when she is idle) and her
operator role are checked before each batch and at each heartbeat, and the
stream ends with an ``end`` event when either is gone. It also ends when the
service stops (the feed closes), so a stop does not wait on open streams.
"""

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlencode
from uuid import UUID

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, Response, StreamingResponse

from services.ops.documents import Filters
from services.ops.rules import HIDDEN_TITLE, STATUSES, parse_age
from services.signer.http._portal_auth import SESSION_COOKIE, Page, PortalAuth, Visitor, signed_in
from services.signer.live import AuditFeed
from services.signer.operator import SCAN_LIMIT, LiveFilters, LiveView, OperatorReader
from services.signer.portal import Person, PortalReader
from services.signer.sessions import Sessions

__all__ = ["HEARTBEAT", "ops_routes"]

HEARTBEAT = 15.0  # seconds between keep-alive comments (proxies often cut a stream idle for 30-60 s)
BACKLOG = 50  # entries a new stream starts with
RETRY_MS = 2000  # how soon EventSource reconnects after the stream ends
_FIELD = 200  # longest filter value read
_LAST_SEQ = 2**63 - 1  # a Last-Event-ID past any seq (bigint) asks only for what comes next
_SCRIPT = Path(__file__).resolve().parents[1] / "static" / "ops_live.js"
# The live page alone runs a script: Paraaf's own file, and it connects only to Paraaf.
_LIVE_CSP = (
    "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; script-src 'self'; connect-src 'self';"
    " form-action 'self'; frame-ancestors 'none'"
)


async def _operator_only(auth: PortalAuth, request: Request, page: Page) -> Response:
    async def gate(request: Request, visitor: Visitor) -> Response:
        if not visitor.person.operator:
            return auth.not_found(request, visitor)
        return await page(request, visitor)

    return await signed_in(auth, request, gate)


def _field(request: Request, name: str) -> str:
    return request.query_params.get(name, "").strip()[:_FIELD]


def _filters(request: Request) -> tuple[Filters, str | None]:
    """The filters asked for, and what is wrong with them (a key of the portal's texts), if anything."""
    status, age = _field(request, "status"), _field(request, "older_than")
    problem = "ops_bad_status" if status and status not in STATUSES else None
    try:
        older_than = parse_age(age) if age else None
    except ValueError:
        older_than, problem = None, "ops_bad_age"
    filters = Filters(
        status=status if status in STATUSES else None, source=_field(request, "source") or None,
        ref=_field(request, "ref") or None, department=_field(request, "department") or None,
        waiting_on=_field(request, "waiting_on") or None, older_than=older_than,
    )
    return filters, problem


def _documents(router: APIRouter, auth: PortalAuth) -> None:
    deps = auth.deps

    @router.get("/p/ops/documents", response_class=HTMLResponse)
    async def documents(request: Request) -> Response:
        """Her org's documents: status (stuck: waiting longer than PARAAF_STUCK_AFTER working days), source,
        reference, department, whom they wait on, age; newest first."""

        async def page(request: Request, visitor: Visitor) -> Response:
            filters, problem = _filters(request)
            rows, total, capped = [], 0, False
            if problem is None:
                async with deps.pool().acquire() as conn:
                    rows, total, capped = await OperatorReader(conn).documents(
                        visitor.person, filters, deps.now(), stuck_after=deps.stuck_after, timezone=deps.stamping.timezone
                    )
            asked = {name: _field(request, name) for name in ("status", "source", "ref", "department", "waiting_on", "older_than")}
            return auth.page(
                request, "ops_documents.html", visitor.person.language, visitor=visitor, rows=rows, total=total,
                capped=capped, scanned=SCAN_LIMIT, asked=asked, problem=problem, statuses=STATUSES, hidden=HIDDEN_TITLE,
            )

        return await _operator_only(auth, request, page)

    @router.get("/p/ops/documents/{document_id}", response_class=HTMLResponse)
    async def timeline(request: Request, document_id: UUID) -> Response:
        """Every step of one document from the audit log, in order: submitted, each request (to whom, for whom),
        reminders, reassignments, mails sent or failed, signatures, the outcome."""

        async def page(request: Request, visitor: Visitor) -> Response:
            async with deps.pool().acquire() as conn:
                found = await OperatorReader(conn).timeline(visitor.person, document_id, deps.stamping.timezone)
            if found is None:
                return auth.not_found(request, visitor)
            return auth.page(
                request, "ops_timeline.html", visitor.person.language, visitor=visitor, timeline=found, hidden=HIDDEN_TITLE,
            )

        return await _operator_only(auth, request, page)


def _live(router: APIRouter, auth: PortalAuth, feed: AuditFeed) -> None:
    @router.get("/p/ops/live", response_class=HTMLResponse)
    async def live(request: Request) -> Response:
        """Events as they happen, without reloading: the page follows /p/ops/events with these filters."""

        async def page(request: Request, visitor: Visitor) -> Response:
            asked = {name: _field(request, name) for name in ("type", "document", "source")}
            stream = "/p/ops/events" + ("?" + urlencode({k: v for k, v in asked.items() if v}) if any(asked.values()) else "")
            response = auth.page(request, "ops_live.html", visitor.person.language, visitor=visitor, asked=asked, stream=stream)
            response.headers["Content-Security-Policy"] = _LIVE_CSP
            return response

        return await _operator_only(auth, request, page)

    @router.get("/p/ops/live.js", include_in_schema=False)
    async def script() -> Response:
        return Response(
            _SCRIPT.read_bytes(), media_type="text/javascript",
            headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"},
        )

    @router.get("/p/ops/events", response_class=StreamingResponse)
    async def events(request: Request) -> Response:
        """text/event-stream of the audit log's entries after Last-Event-ID (or the latest few), then each new one;
        filters as `paraaf tail`: type (a topic pattern such as signature.*), document (id or its start), source."""
        visitor = await auth.visitor(request)
        if visitor is None:
            return PlainTextResponse("Sign in first.", status_code=401)
        if not visitor.person.operator:
            return auth.not_found(request, visitor)
        filters = LiveFilters(_field(request, "type") or "#", _field(request, "document"), _field(request, "source"))
        view = LiveView(visitor.person, filters, auth.deps.stamping.timezone, auth.deps.pool())
        last = request.headers.get("last-event-id", "").strip()
        start = min(int(last), _LAST_SEQ) if last.isdigit() and len(last) <= 19 else max(0, await feed.latest(auth.deps.pool()) - BACKLOG)
        token = request.cookies.get(SESSION_COOKIE, "")
        return StreamingResponse(
            _stream(auth, feed, view, visitor.person, token, start), media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no", "X-Content-Type-Options": "nosniff"},
        )


async def _still_operator(auth: PortalAuth, token: str, person: Person) -> bool:
    """Her session is live (without counting this as use) and she still holds the operator role."""
    async with auth.deps.pool().acquire() as conn:
        session = await Sessions(conn).find(token, auth.deps.now(), auth.config.sessions, touch=False)
        if session is None or (session.org, session.person_id) != (person.org, person.id):
            return False
        again = await PortalReader(conn).person(person.org, person.id)
    return again is not None and again.operator


def _event(shown: dict[str, object]) -> str:
    return f"id: {shown['seq']}\ndata: {json.dumps(shown, separators=(',', ':'))}\n\n"


async def _stream(auth: PortalAuth, feed: AuditFeed, view: LiveView, person: Person, token: str, cursor: int) -> AsyncIterator[str]:
    log = structlog.get_logger().bind(person=person.id, since=cursor)
    log.info("live stream opened")
    try:
        async for chunk in _entries(auth, feed, view, person, token, cursor):
            yield chunk
    finally:  # also when the client went away (the response is cancelled) or the service stops
        log.info("live stream closed")


async def _entries(auth: PortalAuth, feed: AuditFeed, view: LiveView, person: Person, token: str, cursor: int) -> AsyncIterator[str]:
    pool = auth.deps.pool()
    yield f"retry: {RETRY_MS}\n\n"
    while not feed.closed:
        grew = feed.grew  # taken before reading: growth after the read still wakes this stream
        entries = await feed.after(pool, cursor)
        if entries:
            if not await _still_operator(auth, token, person):
                yield "event: end\ndata: signed-out\n\n"
                return
            chunks = []
            for entry in entries:
                cursor = entry.seq
                if (shown := await view.shown(entry)) is not None:
                    chunks.append(_event(shown))
            if chunks:
                yield "".join(chunks)
            continue
        try:
            await asyncio.wait_for(grew.wait(), HEARTBEAT)
        except TimeoutError:
            if not await _still_operator(auth, token, person):
                yield "event: end\ndata: signed-out\n\n"
                return
            yield f": {datetime.now(UTC):%H:%M:%S}\n\n"


def ops_routes(auth: PortalAuth, feed: AuditFeed) -> APIRouter:
    router = APIRouter(tags=["operations"])
    _documents(router, auth)
    _live(router, auth, feed)
    return router
