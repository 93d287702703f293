"""The signer's trust endpoints: the root certificate, its certificate
revocation list (the URL signer certificates name), and verification of any
PDF's signatures against it (rate-limited per address, size- and time-capped)."""

import time

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.datastructures import FormData
from starlette.requests import ClientDisconnect

from services.signer.http._deps import SignerHttpDeps
from services.signer.verify import NotVerifiable, Report, load_roots, verify_pdf
from shared.workers import WorkerDied, WorkerTimedOut

__all__ = ["RateLimit", "capped_form", "trust_routes"]


class RateLimit:
    """At most ``per_minute`` requests per client address (a token bucket that refills continuously)."""

    def __init__(self, per_minute: float, burst: int | None = None) -> None:
        self._rate = per_minute / 60.0
        self._burst = float(burst or max(1, int(per_minute)))
        self._buckets: dict[str, tuple[float, float]] = {}

    def allow(self, address: str) -> float:
        """0 when allowed now, else the seconds until it would be."""
        now = time.monotonic()
        tokens, seen = self._buckets.get(address, (self._burst, now))
        tokens = min(self._burst, tokens + (now - seen) * self._rate)
        if len(self._buckets) > 10_000:
            self._buckets.clear()  # a flood of addresses must not grow this without end
        if tokens >= 1:
            self._buckets[address] = (tokens - 1, now)
            return 0.0
        self._buckets[address] = (tokens, now)
        return (1 - tokens) / self._rate


class _Refused(Exception):
    """A verification request answered with an error instead of a report."""

    def __init__(self, status: int, error: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(error)
        self.response = JSONResponse({"error": error}, status, headers=headers)


async def _body(request: Request, cap: int) -> bytes:
    """The request body, read as it streams in and abandoned once it passes ``cap`` bytes."""
    too_large = _Refused(413, f"the PDF is larger than {cap // 2**20} MB")
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > cap):
        raise too_large  # refused before a byte of the body is read
    body = bytearray()
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > cap:
                raise too_large
    except ClientDisconnect:
        pass
    return bytes(body)


async def _replayed_form(request: Request, body: bytes) -> FormData:
    """The multipart form of a body already read."""
    replayed = False

    async def receive() -> dict:
        nonlocal replayed
        if replayed:
            return {"type": "http.disconnect"}
        replayed = True
        return {"type": "http.request", "body": body, "more_body": False}

    return await Request(request.scope, receive).form()


async def _form_file(request: Request, body: bytes) -> bytes | None:
    """The multipart field ``file`` of a body already read."""
    upload = (await _replayed_form(request, body)).get("file")
    return await upload.read() if upload is not None and hasattr(upload, "read") else None


async def capped_form(request: Request, cap: int) -> FormData | None:
    """A multipart form read as it streams in; None once it passes ``cap`` bytes."""
    try:
        body = await _body(request, cap)
    except _Refused:
        return None
    return await _replayed_form(request, body)


async def _pdf_from(request: Request, cap: int) -> bytes:
    body = await _body(request, cap)
    multipart = request.headers.get("content-type", "").startswith("multipart/form-data")
    pdf = await _form_file(request, body) if multipart else (body or None)
    if pdf is None:
        raise _Refused(400, "send a PDF as the request body or as the multipart field `file`")
    return pdf


async def _root_certificate(deps: SignerHttpDeps, org: str) -> str:
    async with deps.reader() as store:
        return await store.authority_certificate(org)


async def _report(deps: SignerHttpDeps, pdf: bytes, org: str) -> Report:
    cert_pem = await _root_certificate(deps, org)
    roots = tuple(c.dump() for c in load_roots(cert_pem.encode())) + deps.stamping.tsa_roots_der
    try:
        return await deps.verify_pool().run(verify_pdf, pdf, roots, timeout=deps.verify_limits.seconds)
    except NotVerifiable as exc:
        raise _Refused(400, str(exc)) from None
    except (WorkerTimedOut, WorkerDied):
        raise _Refused(422, "this PDF could not be verified within the time and memory allowed") from None


def _rate_limited(verifications: RateLimit, request: Request) -> None:
    wait = verifications.allow(request.client.host if request.client else "?")
    if wait:
        raise _Refused(429, "too many verifications from your address; try again shortly", {"Retry-After": str(int(wait) + 1)})


def trust_routes(deps: SignerHttpDeps) -> APIRouter:
    router = APIRouter(tags=["trust"])
    verifications = RateLimit(deps.verify_limits.per_minute)

    @router.get("/ca.pem")
    async def root_certificate(request: Request) -> Response:
        """The root certificate that signer certificates of this portal's organisation chain to (trust it to validate
        their signatures)."""
        return Response(await _root_certificate(deps, deps.org_at(request)), media_type="application/x-pem-file")

    @router.get("/ca/{org}.crl")
    async def revocation_list(org: str) -> Response:
        """The organisation's certificate revocation list (DER), signed by its root: the signer certificates it revoked."""
        async with deps.reader() as store:
            if not await store.has_authority(org):
                return JSONResponse({"error": f"no certificate authority for organisation `{org}`"}, 404)
            crl = await store.crl(org)
        return Response(crl, media_type="application/pkix-crl", headers={"Cache-Control": "max-age=300"})

    @router.post("/verify")
    async def verify(
        request: Request,
        format: str = Query("json", pattern="^(json|text)$", description="`json` or `text`"),  # noqa: A002
    ) -> Response:
        """Validate every signature of the PDF in the request body (raw, or a multipart field `file`).

        Signatures are trusted when they chain to this installation's root
        certificate. The report says per signature who signed, on whose
        behalf, when, whether it is intact and trusted, and what changed
        after it; `ok` is false when any signature fails (or there is none).
        """
        try:
            _rate_limited(verifications, request)
            report = await _report(deps, await _pdf_from(request, deps.verify_limits.max_bytes), deps.org_at(request))
        except _Refused as refused:
            return refused.response
        if format == "text" or "text/plain" in request.headers.get("accept", ""):
            return PlainTextResponse(report.to_text(deps.stamping.timezone))
        return JSONResponse(report.to_dict())

    return router
