"""Signing several documents at once from "To sign": the list (grouped by flow
and submitter, each with its first page to look at and a box to tick), one
confirmation of the selection, then a run in the background whose progress the
page follows (/p/bulk.js polls a small JSON answer; CSP script-src 'self') and
a summary naming each document that was not signed, and why.

Each document of a run is signed exactly as from its own link (``sign_once``:
the link's rules, the visibility policy, one transaction, the same event), with
a short-lived link of her own request made for it as "Read and sign" does. One
that fails (withdrawn meanwhile, an earlier step still open) is recorded and the
others go on. As many are signed at once as the signer has signing workers.
Declining stays per document, on its own page.
"""

import asyncio
from collections.abc import Sequence
from pathlib import Path
from uuid import UUID, uuid4

import asyncpg
import structlog
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from services.signer.bulk import BulkItem, BulkRun, BulkRuns, hold_run, release_run, run_going_on
from services.signer.domain import LinkRefused
from services.signer.http._portal_auth import PortalAuth, Visitor, signed_in
from services.signer.http._signing import SigningPages, sign_once
from services.signer.i18n import texts
from services.signer.pades import SigningUnavailable
from services.signer.portal import PortalReader, ToSign
from services.signer.portal_texts import portal_texts
from services.signer.render import NotRendered
from services.signer.sessions import Sessions
from shared import blobs

__all__ = ["bulk_routes", "grouped"]

MAX_SELECTION = 200  # as many as "To sign" lists at most
_SCRIPT = Path(__file__).resolve().parents[1] / "static" / "portal_bulk.js"
_BULK_CSP = (
    "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; script-src 'self'; connect-src 'self';"
    " form-action 'self'; frame-ancestors 'none'"
)


def grouped(waiting: Sequence[ToSign], ad_hoc: str) -> list[tuple[str, str, list[ToSign]]]:
    """(flow, submitter's name, requests) in the order the list shows them: by flow, then submitter, oldest first."""
    groups: dict[tuple[str, str], list[ToSign]] = {}
    for request in waiting:
        groups.setdefault((request.flow or ad_hoc, request.submitted_by.name), []).append(request)
    return [
        (flow, name, requests)
        for (flow, name), requests in sorted(groups.items(), key=lambda g: (g[0][0].lower(), g[0][1].lower()))
    ]


class _Runs:
    """The runs under way in this process, each an asyncio task over its items holding the run's lease (bulk.py), so
    that every process of the signer knows whether a run goes on."""

    def __init__(self, shared: SigningPages) -> None:
        self.shared, self.deps = shared, shared.deps
        self._tasks: dict[UUID, asyncio.Task[None]] = {}

    async def running(self, run_id: UUID) -> bool:
        if run_id in self._tasks:
            return True
        async with self.deps.pool().acquire() as conn:
            return await run_going_on(conn, run_id)

    async def start(self, run: BulkRun) -> None:
        """Begin the run; it holds its lease before this returns, so the page it leads to finds it going on in
        any process."""
        lease = await self.deps.pool().acquire()
        try:
            await hold_run(lease, run.run_id)
        except BaseException:
            await self.deps.pool().release(lease)
            raise
        task = asyncio.create_task(self._leased(run, lease), name=f"bulk {run.run_id}")
        self._tasks[run.run_id] = task
        task.add_done_callback(lambda _: self._tasks.pop(run.run_id, None))

    async def _leased(self, run: BulkRun, lease: asyncpg.Connection) -> None:
        try:
            await self._run(run)
        finally:
            try:
                await release_run(lease, run.run_id)
            finally:
                await self.deps.pool().release(lease)

    async def _run(self, run: BulkRun) -> None:
        log = structlog.get_logger().bind(run_id=str(run.run_id), person=run.person_id)
        log.info("bulk signing started", count=len(run.items))
        gate = asyncio.Semaphore(max(1, self.deps.signing_pool().workers))  # FIFO: items start in the order shown

        async def one(item: BulkItem) -> None:
            async with gate:
                outcome, reason = await self._sign(run, item, log)
            async with self.deps.pool().acquire() as conn:
                await BulkRuns(conn).record(run.run_id, item.position, outcome, reason, self.deps.now())

        await asyncio.gather(*(one(item) for item in run.items))
        async with self.deps.pool().acquire() as conn:
            await BulkRuns(conn).finish(run.run_id, self.deps.now())
        log.info("bulk signing finished", count=len(run.items))

    async def _sign(self, run: BulkRun, item: BulkItem, log: structlog.typing.FilteringBoundLogger) -> tuple[str, str | None]:
        """One document through the single link's path; what became of it, and why when it was not signed."""
        try:
            async with self.deps.pool().acquire() as conn:
                token = await Sessions(conn).signing_link_for(item.request_id, run.person_id, self.deps.now())
            done = await sign_once(self.shared, token)
        except LinkRefused as refused:
            log.info("bulk item not signed", request_id=str(item.request_id), reason=refused.code)
            return "failed", refused.code
        except SigningUnavailable:
            return "failed", "unavailable"
        except Exception:  # the edge of one item: whatever broke it must not stop the others
            log.exception("bulk item failed", request_id=str(item.request_id))
            return "failed", "unavailable"
        self.deps.after_commit()
        return ("approved" if done.action == "approve" else "signed"), None


def _reason(language: str, item: BulkItem, live: bool) -> str:
    """What the summary says of an item that was not signed (or never will be, when its run was cut off)."""
    p, t = portal_texts(language), texts(language)
    if item.outcome == "waiting":
        return p["bulk_waiting"] if live else p["bulk_interrupted"]
    if item.outcome != "failed":
        return p[f"bulk_{item.outcome}"]
    said = t.get(f"gone_{item.reason}") or t["unavailable"]
    return f"{p['bulk_failed']}: {said}"


def _progress(run: BulkRun, language: str, live: bool) -> dict[str, object]:
    return {
        "count": len(run.items),
        "done": run.done,
        "signed": run.signed,
        "finished": run.finished_at is not None or not live,
        "said": portal_texts(language)["bulk_progress"].format(done=run.done, count=len(run.items)),
        "items": [{"position": i.position, "outcome": i.outcome, "said": _reason(language, i, live)} for i in run.items],
    }


async def _selection(auth: PortalAuth, request: Request, visitor: Visitor) -> tuple[list[ToSign], str | None, dict[str, str]]:
    """The ticked requests, in the order sent, each still waiting for her; else the sentence that says what is wrong."""
    form = await request.form()
    p = portal_texts(visitor.person.language)
    try:
        chosen = [UUID(str(value)) for value in form.getlist("request")][:MAX_SELECTION]
    except ValueError:
        return [], p["bulk_gone"], dict(form)  # type: ignore[arg-type]
    if not chosen:
        return [], p["bulk_none"], dict(form)  # type: ignore[arg-type]
    async with auth.deps.pool().acquire() as conn:
        waiting = {w.request_id: w for w in await PortalReader(conn).to_sign(visitor.person)}
    if any(request_id not in waiting for request_id in chosen):
        return [], p["bulk_gone"], dict(form)  # type: ignore[arg-type]
    return [waiting[r] for r in dict.fromkeys(chosen)], None, dict(form)  # type: ignore[arg-type]


def _listing(router: APIRouter, auth: PortalAuth) -> None:
    @router.get("/p/to-sign", response_class=HTMLResponse)
    async def to_sign(request: Request) -> Response:
        """What waits for her signature (her own requests and those she holds as substitute), by flow and submitter,
        each to open and read, or to tick after a look at its first page and sign with the others at once."""

        async def page(request: Request, visitor: Visitor) -> Response:
            async with auth.deps.pool().acquire() as conn:
                waiting = await PortalReader(conn).to_sign(visitor.person)
            groups = grouped(waiting, portal_texts(visitor.person.language)["bulk_ad_hoc"])
            return auth.page(
                request, "portal_to_sign.html", visitor.person.language, visitor=visitor, requests=waiting, groups=groups
            )

        return await signed_in(auth, request, page)

    @router.get("/p/requests/{request_id}/first-page.png")
    async def first_page(request: Request, request_id: UUID) -> Response:
        """The first page of a document waiting for her, as it stands now, as a picture for the list."""

        async def picture(request: Request, visitor: Visitor) -> Response:
            person = visitor.person
            async with auth.deps.pool().acquire() as conn:
                reader = PortalReader(conn)
                mine = {r.request_id: r for r in await reader.to_sign(person)}.get(request_id)
                document = await reader.document(person.org, mine.document_id) if mine else None
                if mine is None or document is None:
                    return Response(status_code=404)
                digest = (await blobs.version_digests(conn, document.document_id, person.org))[-1]
                png = auth.deps.render_pool().known_page(digest, 0)
                pdf = await reader.latest_pdf(document) if png is None else None  # the PDF only to draw it
            try:
                png = await auth.deps.render_pool().page(digest, pdf, 0) if pdf is not None else png
            except NotRendered:
                return Response(
                    "This page cannot be shown as a picture; open the document.", status_code=422, media_type="text/plain"
                )
            return Response(png, media_type="image/png", headers={"Cache-Control": "private, no-store"})

        return await signed_in(auth, request, picture)


def _confirming(router: APIRouter, auth: PortalAuth, runs: _Runs) -> None:
    @router.post("/p/bulk/review", response_class=HTMLResponse)
    async def review(request: Request) -> Response:
        """The ticked documents, listed once more, with the one button that signs them all."""

        async def page(request: Request, visitor: Visitor) -> Response:
            chosen, problem, form = await _selection(auth, request, visitor)
            language = visitor.person.language
            if not auth.csrf_ok(visitor, form.get("csrf", "")):
                return auth.message(request, language, portal_texts(language)["csrf"], visitor=visitor, status=403)
            if problem:
                return auth.page(request, "portal_bulk_problem.html", language, visitor=visitor, problem=problem, status=422)
            return auth.page(request, "portal_bulk_confirm.html", language, visitor=visitor, chosen=chosen, run_id=uuid4())

        return await signed_in(auth, request, page)

    @router.post("/p/bulk", response_class=HTMLResponse)
    async def start(request: Request) -> Response:
        """Sign the confirmed selection: the run starts, and its page follows it."""

        async def act(request: Request, visitor: Visitor) -> Response:
            chosen, problem, form = await _selection(auth, request, visitor)
            person = visitor.person
            if not auth.csrf_ok(visitor, form.get("csrf", "")):
                return auth.message(request, person.language, portal_texts(person.language)["csrf"], visitor=visitor, status=403)
            try:
                run_id = UUID(form.get("run", ""))
            except ValueError:
                run_id = None
            async with auth.deps.pool().acquire() as conn:
                started_before = run_id is not None and await BulkRuns(conn).run(person.org, person.id, run_id) is not None
                if started_before:  # the same confirmation sent twice: one run
                    return RedirectResponse(f"/p/bulk/{run_id}", status_code=303)
                if problem or run_id is None:
                    said = problem or portal_texts(person.language)["bulk_gone"]
                    return auth.page(
                        request, "portal_bulk_problem.html", person.language, visitor=visitor, problem=said, status=422
                    )
                items = [(w.request_id, w.title) for w in chosen]
                if await BulkRuns(conn).start(run_id, person.org, person.id, items, auth.deps.now()):
                    await runs.start(await BulkRuns(conn).run(person.org, person.id, run_id))  # type: ignore[arg-type]
            return RedirectResponse(f"/p/bulk/{run_id}", status_code=303)

        return await signed_in(auth, request, act)


def _following(router: APIRouter, auth: PortalAuth, runs: _Runs) -> None:
    async def her_run(visitor: Visitor, run_id: UUID) -> BulkRun | None:
        async with auth.deps.pool().acquire() as conn:
            return await BulkRuns(conn).run(visitor.person.org, visitor.person.id, run_id)

    @router.get("/p/bulk/{run_id}", response_class=HTMLResponse)
    async def run_page(request: Request, run_id: UUID) -> Response:
        """A run: its progress while it goes, then how many were signed and, by name, which were not and why."""

        async def page(request: Request, visitor: Visitor) -> Response:
            run = await her_run(visitor, run_id)
            if run is None:
                return auth.not_found(request, visitor)
            language, live = visitor.person.language, await runs.running(run_id)
            answer = auth.page(
                request,
                "portal_bulk_run.html",
                language,
                visitor=visitor,
                run=run,
                progress=_progress(run, language, live),
            )
            answer.headers["Content-Security-Policy"] = _BULK_CSP
            return answer

        return await signed_in(auth, request, page)

    @router.get("/p/bulk/{run_id}/progress")
    async def progress(request: Request, run_id: UUID) -> Response:
        """How far the run is, for the page's script."""

        async def answer(request: Request, visitor: Visitor) -> Response:
            run = await her_run(visitor, run_id)
            if run is None:
                return JSONResponse({"error": "no such run"}, status_code=404)
            body = _progress(run, visitor.person.language, await runs.running(run_id))
            return JSONResponse(body, headers={"Cache-Control": "no-store"})

        return await signed_in(auth, request, answer)

    @router.get("/p/bulk.js", include_in_schema=False)
    async def script() -> Response:
        return Response(
            _SCRIPT.read_bytes(),
            media_type="text/javascript",
            headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"},
        )


def bulk_routes(auth: PortalAuth, shared: SigningPages) -> APIRouter:
    router = APIRouter(tags=["portal"])
    runs = _Runs(shared)
    _listing(router, auth)
    _confirming(router, auth, runs)
    _following(router, auth, runs)
    return router
