"""The routes behind a signing link (the page, its PDF and page images, Sign and
Decline) and behind a download link (the signed PDF for the submitter)."""

import asyncpg
import structlog
from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from services.signer import signing
from services.signer.domain import LinkRefused, PolicyFacts, ReasonRequired, SigningLink, SigningRequest, check_download
from services.signer.http._deps import SignerHttpDeps
from services.signer.http._pages import CSRF_COOKIE, Pages, SigningView
from services.signer.i18n import texts
from services.signer.pades import SigningUnavailable, TimestampUnavailable
from services.signer.portal import PortalReader
from services.signer.render import NotRendered
from services.signer.store import PostgresSignerStore
from services.signer.tokens import csrf_valid, hash_token
from shared.events import TimestampFailed
from shared.http import pdf_response
from shared.metrics import SIGNATURES
from shared.visibility import Access, access

__all__ = ["SigningPages", "download_routes", "sign_once", "signing_routes"]


class SigningPages:
    """What the signing routes share: opening a link, its document, and the pages they answer with."""

    def __init__(self, deps: SignerHttpDeps, pages: Pages) -> None:
        self.deps, self.pages = deps, pages

    async def open(self, token: str, asked: Request | None = None) -> SigningLink:
        """The link's request, once its rules and the visibility policy hold; asked on another organisation's
        portal (``asked``'s Host) it is answered as if it did not exist."""
        async with self.deps.pool().acquire() as conn:  # one connection for both: each one taken is a reset query
            link = await signing.open_link(PostgresSignerStore(conn, self.deps.outbox, self.deps.keyring), token, self.deps.now())
            await self.admit(conn, link, asked)
        return link

    async def open_page(self, token: str, asked: Request) -> tuple[SigningLink, list[SigningRequest]]:
        """:meth:`open`, with who signed the document before (the signing page shows them) read in the same round trip."""
        async with self.deps.pool().acquire() as conn:
            store = PostgresSignerStore(conn, self.deps.outbox, self.deps.keyring)
            link, signed = await signing.open_page(store, token, self.deps.now())
            await self.admit(conn, link, asked)
        return link, signed

    async def admit(self, conn: asyncpg.Connection, link: SigningLink, asked: Request | None) -> None:
        """What holds beyond the link's own rules: asked on its organisation's portal, and the visibility policy."""
        if asked is not None and link.request.org != self.deps.org_at(asked):
            raise LinkRefused("unknown", status=404, language=link.request.signer.language)
        await self.check_policy(conn, link)

    @staticmethod
    async def check_policy(conn: asyncpg.Connection, link: SigningLink) -> None:
        """A link is the capability to sign, but the visibility policy still holds: someone it keeps out (asked for a
        shielded group's document from outside the group) is answered as if the link did not exist."""
        request, facts = link.request, link.policy
        if facts is None:  # not read with the link
            person, document = await PortalReader(conn).person_and_document(request.org, request.signer.id, request.document_id)
            facts = PolicyFacts(person.viewer if person else None, document.facts if document else None)
        if facts.viewer is not None and facts.document is not None and access(facts.viewer, facts.document) < Access.FULL:
            raise LinkRefused("unknown", status=404, language=request.signer.language)

    async def pdf(self, link: SigningLink) -> bytes:
        if (kept := self.deps.recent_blobs.get(link.document.pdf_sha256)) is not None:
            return kept  # no connection taken for it
        async with self.deps.reader() as store:
            return await store.blob(link.document.pdf_sha256)

    async def page(
        self, request: Request, token: str, link: SigningLink, *, error: str | None = None, status: int = 200,
        signed_before: list[SigningRequest] | None = None,
    ) -> HTMLResponse:
        """The signing page; ``signed_before`` is read here unless given (a connection is taken only for what is
        not at hand: the PDF is needed only when its pages are to be measured)."""
        digest, renderer = link.document.pdf_sha256, self.deps.render_pool()
        sizes = renderer.known_sizes(digest)
        pdf = self.deps.recent_blobs.get(digest) if sizes is None else None
        if signed_before is None or (sizes is None and pdf is None):
            async with self.deps.reader() as store:
                if signed_before is None:
                    signed_before = await store.signed_before(link.request.document_id)
                if sizes is None and pdf is None:
                    pdf = await store.blob(digest)
        if pdf is not None:
            try:
                sizes = await renderer.page_sizes(digest, pdf)
            except NotRendered:
                sizes = []  # the page still offers the PDF itself, and Sign and Decline
        nonce = self.pages.nonce(request)
        view = SigningView(token, link, sizes, signed_before, self.pages.csrf(token, nonce), error)
        return self.pages.signing(request, view, nonce, status)

    async def csrf_refused(self, request: Request, token: str, presented: str) -> HTMLResponse | None:
        """The 'form expired' page, in the link's person's language, unless the form's CSRF token is good."""
        if csrf_valid(self.deps.csrf_secret, hash_token(token), request.cookies.get(CSRF_COOKIE, ""), presented):
            return None
        async with self.deps.reader() as store:
            link = await store.find_link(hash_token(token))
        language = link.request.signer.language if link else "nl"
        return self.pages.message(request, language, "sign_title", texts(language)["csrf"], 403)

    def done(self, request: Request, done: signing.Decided) -> HTMLResponse:
        self.deps.after_commit()
        key = {"sign": "signed_done", "approve": "approved_done"}.get(done.action, "declined_done")
        heading = "sign_title" if done.action == "decline" else f"{done.action}_title"
        return self.pages.message(request, done.language, heading, texts(done.language)[key].format(title=done.title), 200)


def _viewing(router: APIRouter, shared: SigningPages) -> None:
    @router.get("/s/{token}", response_class=HTMLResponse)
    async def open_signing_page(request: Request, token: str) -> HTMLResponse:
        """The page a signer opens from the mail: the document, Sign and Decline."""
        try:
            link, signed_before = await shared.open_page(token, request)
        except LinkRefused as error:
            return shared.pages.refused(request, error)
        return await shared.page(request, token, link, signed_before=signed_before)

    @router.get("/s/{token}/document.pdf")
    async def document_pdf(request: Request, token: str) -> Response:
        """The document as it stands now, for as long as the link is good."""
        try:
            link = await shared.open(token, request)
        except LinkRefused as error:
            return shared.pages.refused(request, error)
        return pdf_response(await shared.pdf(link), link.request.filename, disposition="inline")

    @router.get("/s/{token}/pages/{number}.png")
    async def page_image(request: Request, token: str, number: int) -> Response:
        """Page ``number`` (from 1) of the document as it stands now, as a picture for the signing page."""
        try:
            link = await shared.open(token, request)
        except LinkRefused as error:
            return shared.pages.refused(request, error)
        try:
            png = await _page_png(shared, link, number)
        except NotRendered:
            return Response("This page cannot be shown as a picture; open the PDF.", status_code=422, media_type="text/plain")
        if png is None:
            return Response(status_code=404)
        return Response(png, media_type="image/png", headers={"Cache-Control": "private, no-store"})


async def _page_png(shared: SigningPages, link: SigningLink, number: int) -> bytes | None:
    """The picture, with the PDF fetched only when it must be measured or drawn (a picture at hand needs neither)."""
    digest, renderer = link.document.pdf_sha256, shared.deps.render_pool()
    sizes = renderer.known_sizes(digest)
    if sizes is not None and 1 <= number <= len(sizes) and (known := renderer.known_page(digest, number - 1)) is not None:
        return known
    pdf = await shared.pdf(link)
    if not 1 <= number <= len(await renderer.page_sizes(digest, pdf)):
        return None
    return await renderer.page(digest, pdf, number - 1)


async def _timestamp_failed(deps: SignerHttpDeps, link: SigningLink, reason: str) -> None:
    """The TSA failed a signer: ``timestamp.failed`` makes it an operator's incident until a signature succeeds."""
    request = link.request
    async with deps.store() as store:
        await store.publish(
            TimestampFailed(
                correlation_id=request.document_id,
                org=request.org,
                request_id=request.request_id,
                tsa_url=deps.stamping.tsa_url or "",
                reason=reason,
            )
        )
    deps.after_commit()


async def sign_once(shared: SigningPages, token: str, asked: Request | None = None) -> signing.Decided:
    """A signature over HTTP, as the signing page and the portal's bulk signing both make it: the link's rules and the
    visibility policy, then one transaction of its own. Raises LinkRefused, or SigningUnavailable (rolled back, the
    link still works) once a time-stamping failure has been reported."""
    deps = shared.deps
    try:
        # The link is found (and locked) once, in the signature's own transaction, and admitted there: reading it
        # first outside as well cost a round trip more a signature. The policy's reads take no locks.
        async with deps.signing_pool().turn(), deps.pool().acquire() as conn, conn.transaction():
            store = PostgresSignerStore(conn, deps.outbox, deps.keyring, deps.recent_blobs)
            done = await signing.sign(
                store, token, now=deps.now(), pdf_signer=deps.signing_pool(), stamping=deps.stamping,
                admit=lambda link: shared.admit(conn, link, asked),
            )
    except SigningUnavailable as error:
        structlog.get_logger().warning("signing unavailable", error=str(error))
        if isinstance(error, TimestampUnavailable):
            await _timestamp_failed(deps, await shared.open(token), str(error))
        raise
    SIGNATURES.labels(done.action).inc()  # committed: the transaction ended with the block
    if (redrawn := done.redrawn) is not None:  # the next signer of a long document gets its first page without a job
        deps.render_pool().derive(redrawn.pdf_sha256, redrawn.before, redrawn.changed)
    return done


def _deciding(router: APIRouter, shared: SigningPages) -> None:
    deps = shared.deps

    @router.post("/s/{token}/sign", response_class=HTMLResponse)
    async def sign(request: Request, token: str, csrf: str = Form("")) -> HTMLResponse:
        """Sign (or approve) the request behind the link."""
        if refused := await shared.csrf_refused(request, token, csrf):
            return refused
        try:
            done = await sign_once(shared, token, request)
        except LinkRefused as error:
            return shared.pages.refused(request, error)
        except SigningUnavailable:  # rolled back: nothing signed, the link still works
            link = await shared.open(token, request)
            return await shared.page(request, token, link, error=texts(link.request.signer.language)["unavailable"], status=503)
        return shared.done(request, done)

    @router.post("/s/{token}/decline", response_class=HTMLResponse)
    async def decline(request: Request, token: str, csrf: str = Form(""), reason: str = Form("")) -> HTMLResponse:
        """Decline the request behind the link; a reason is required."""
        if refused := await shared.csrf_refused(request, token, csrf):
            return refused
        try:
            await shared.open(token, request)
            async with deps.store() as store:
                done = await signing.decline(store, token, reason, now=deps.now())
        except LinkRefused as error:
            return shared.pages.refused(request, error)
        except ReasonRequired as missing:
            error = texts(missing.link.request.signer.language)["reason_required"]
            return await shared.page(request, token, missing.link, error=error, status=422)
        return shared.done(request, done)


def signing_routes(deps: SignerHttpDeps, pages: Pages) -> APIRouter:
    router = APIRouter(tags=["signing"])
    shared = SigningPages(deps, pages)
    _viewing(router, shared)
    _deciding(router, shared)
    return router


def download_routes(deps: SignerHttpDeps, pages: Pages) -> APIRouter:
    router = APIRouter(tags=["documents"])

    @router.get("/d/{token}")
    async def download(request: Request, token: str) -> Response:
        """The signed PDF, for the submitter the completion mail was sent to, while the link is good."""
        async with deps.reader() as store:
            try:
                found = check_download(await store.find_download(hash_token(token)), deps.now())
                if found.org != deps.org_at(request):  # another organisation's portal: as if the link did not exist
                    raise LinkRefused("unknown", status=404)
            except LinkRefused as error:
                return pages.refused(request, error)
            return pdf_response(await store.blob(found.pdf_sha256), found.filename)

    return router
