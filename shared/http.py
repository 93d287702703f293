"""What every service's HTTP API starts from: a FastAPI app with ``/health``
(no internal detail in its answer), the operations endpoints ``/healthz``
(the process answers), ``/readyz`` (what it needs is there: which check
failed, never why) and ``/metrics`` (Prometheus; see shared/metrics.py), OpenAPI pages only when asked for
(``PARAAF_HTTP_DOCS``), a "try again in a moment" (503) instead of a 500 when
the database connection was cut mid-request (its transaction was rolled
back, so nothing happened), how a PDF is sent so that no browser runs it
as anything else, and :func:`require_scope`, the API-key check of an endpoint
(the keys themselves are shared/apikeys.py's, which needs no FastAPI)."""

import unicodedata
from collections.abc import Callable
from urllib.parse import quote

import asyncpg
import structlog
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4, generate_latest

from shared.apikeys import Principal, find_key
from shared.metrics import Probes, database_answers

__all__ = ["DATABASE_CUT", "base_app", "content_disposition", "pdf_response", "require_scope"]

# The database went away mid-request: a restart, a failover, an operator ending connections; or a pooled
# connection left mid-operation by such a cut (asyncpg: "cannot switch to state ..., another operation is in
# progress", seen in the fault suite after pg_terminate_backend).
DATABASE_CUT = (
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    ConnectionError,
)
_TRY_AGAIN = (
    "Even geduld: probeer het zo meteen opnieuw. Er is niets gebeurd.\n"
    "Un instant : réessayez dans un moment. Rien n'a été fait.\n"
    "Please try again in a moment. Nothing was done.\n"
)


def base_app(service: str, pool: Callable[[], asyncpg.Pool], *, docs: bool = False, **fastapi_args: object) -> FastAPI:
    pages = {} if docs else {"docs_url": None, "redoc_url": None, "openapi_url": None}
    app = FastAPI(title=f"Paraaf {service}", **pages, **fastapi_args)  # type: ignore[arg-type]

    @app.get("/health", tags=["operations"])
    async def health() -> JSONResponse:
        """200 when the service is up and reaches its database."""
        try:
            await pool().fetchval("SELECT 1")
        except (OSError, asyncpg.PostgresError, RuntimeError) as exc:
            structlog.get_logger().warning("health check: database unreachable", error=repr(exc))
            return JSONResponse({"service": service, "status": "degraded"}, status_code=503)
        return JSONResponse({"service": service, "status": "ok"})

    app.state.probes = Probes({"database": database_answers(pool)})  # the Service puts its own in their place
    _operations(app, service)
    for cut in DATABASE_CUT:
        app.add_exception_handler(cut, _database_cut)
    return app


def _operations(app: FastAPI, service: str) -> None:
    @app.get("/healthz", tags=["operations"])
    async def healthz() -> JSONResponse:
        """200 whenever the process answers: an orchestrator restarts it only when it does not."""
        return JSONResponse({"service": service, "status": "alive"})

    @app.get("/readyz", tags=["operations"])
    async def readyz(request: Request) -> JSONResponse:
        """200 when every check passes; 503 naming the checks that failed, so traffic waits until they pass."""
        results = await request.app.state.probes.readiness()
        failed = [name for name, passed in results.items() if not passed]
        body = {"service": service, "status": "not ready" if failed else "ready", "failed": failed}
        return JSONResponse(body, status_code=503 if failed else 200)

    @app.get("/metrics", tags=["operations"], response_class=PlainTextResponse)
    async def metrics(request: Request) -> Response:
        """This process's metrics in Prometheus's text format, the database gauges read just now."""
        await request.app.state.probes.refresh()
        return Response(generate_latest(), media_type=CONTENT_TYPE_PLAIN_0_0_4)


async def _database_cut(request: Request, exc: Exception) -> Response:
    structlog.get_logger().warning("request failed: database connection lost", path=request.url.path, error=repr(exc))
    return PlainTextResponse(_TRY_AGAIN, status_code=503, headers={"Retry-After": "5"})


def _ascii_fallback(filename: str) -> str:
    plain = unicodedata.normalize("NFKD", filename).encode("ascii", "ignore").decode()
    plain = "".join(c if c.isalnum() or c in "._- " else "_" for c in plain).strip() or "document.pdf"
    return plain if plain.lower().endswith(".pdf") else plain + ".pdf"


def content_disposition(disposition: str, filename: str) -> str:
    """RFC 6266: an ASCII ``filename`` for old clients and the real one as ``filename*`` in UTF-8."""
    return f"{disposition}; filename=\"{_ascii_fallback(filename)}\"; filename*=UTF-8''{quote(filename, safe='')}"


def pdf_response(pdf: bytes, filename: str, *, disposition: str = "attachment") -> Response:
    """A PDF that is only ever a PDF: not sniffed as something else, scripts in a sandbox, never cached."""
    return Response(
        pdf,
        media_type="application/pdf",
        headers={
            "Content-Disposition": content_disposition(disposition, filename),
            "Content-Security-Policy": "sandbox",
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "no-store",
        },
    )


def _bearer(request: Request) -> str | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def require_scope(pool: Callable[[], asyncpg.Pool], scope: str) -> Callable[..., object]:
    """A FastAPI dependency: the caller's key, which must grant ``scope`` (401 without a valid key, 403 without the scope)."""

    async def principal(request: Request) -> Principal:
        key = _bearer(request)
        found = await find_key(pool(), key) if key else None
        if found is None:
            raise HTTPException(
                401,
                "send an API key: `Authorization: Bearer <key>` (`paraaf keys create` makes one)",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if not found.allows(scope):
            raise HTTPException(403, f"the key `{found.name}` lacks the `{scope}` scope")
        return found

    return Depends(principal)
