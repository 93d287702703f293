"""Intake's HTTP API: health; the contract integrators code against — the
AsyncAPI document of the messages (``/asyncapi``, the copy kept in docs/,
which a test keeps equal to what the services generate); and, for systems
that cannot speak AMQP, ``POST /submissions`` (JSON, the queue's message as it
is, or multipart/form-data with the PDF as file ``pdf``), which goes through
the same checks, the same source policy and the same dedupe as a submission on
``esign.intake`` and is answered at once, and ``GET
/submissions/<source>/<ref>``, which says where a document stands. The
caller's API key (scope ``submit``) is named after its source and belongs to
the source's org: a key reaches only its own source's documents."""

import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
import yaml
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.datastructures import UploadFile

from services.intake import handlers
from services.intake.checks import SubmissionChecks
from services.intake.domain import Examined, Submission, examine
from services.intake.pdf import describe_size
from services.intake.store import Document, PostgresIntakeStore, Rejection
from shared.apikeys import Principal
from shared.http import base_app, require_scope

__all__ = ["ASYNCAPI", "build_http"]

ASYNCAPI = Path(__file__).resolve().parents[2] / "docs" / "asyncapi.yaml"

_JSON_FIELDS = ("steps", "metadata")  # sent as JSON text in a multipart form


def build_http(
    pool: Callable[[], asyncpg.Pool],
    *,
    store: Callable[[asyncpg.Connection], PostgresIntakeStore] | None = None,
    checks: SubmissionChecks | None = None,
    after_commit: Callable[[], None] = lambda: None,
    docs: bool = False,
    asyncapi: Path = ASYNCAPI,
) -> FastAPI:
    app = base_app("intake", pool, docs=docs)
    _contract(app, asyncapi.read_text() if asyncapi.is_file() else None)
    if store is None or checks is None:
        return app
    submitter = require_scope(pool, "submit")

    @app.post("/submissions", status_code=202, tags=["submissions"])
    async def submit(request: Request, key: Principal = submitter) -> JSONResponse:
        """Submit a document as the key's source: 202 with its id (the same one again for the same reference and
        PDF), or 422 naming what was wrong (also answered as ``<source>.rejected``, as on the queue)."""
        source = await _own_source(pool(), store, key)
        body = await _body(request, source, checks.limits.max_body_bytes)
        examined = await checks(examine, Submission(f"submit.{source}", body, source, "application/json"))
        answer = await _submit(pool(), store, examined)
        after_commit()
        if isinstance(answer, Rejection):
            return JSONResponse({"code": answer.code, "reason": answer.reason, "external_ref": answer.external_ref}, status_code=422)
        return JSONResponse(_status(answer), status_code=202)

    @app.get("/submissions/{source}/{external_ref:path}", tags=["submissions"])
    async def status(source: str, external_ref: str, key: Principal = submitter) -> JSONResponse:
        """Where the source's document with this reference stands (404 when it submitted none)."""
        if source != await _own_source(pool(), store, key):
            raise HTTPException(403, f"the key `{key.name}` asks only about source `{key.name}`'s documents")
        async with pool().acquire() as conn:
            document = await handlers.status_of(store(conn), source, external_ref)
        if document is None:
            return JSONResponse(
                {"code": "unknown_document", "reason": f"source `{source}` submitted no document with external_ref `{external_ref}`"},
                status_code=404,
            )
        return JSONResponse(_status(document))

    return app


async def _submit(
    pool: asyncpg.Pool, store: Callable[[asyncpg.Connection], PostgresIntakeStore], examined: Examined
) -> Document | Rejection:
    """Accept or refuse in one transaction; the same reference sent twice at once is, the second time, the same one."""
    try:
        async with pool.acquire() as conn, conn.transaction():
            return await handlers.on_submission(examined, store(conn))
    except asyncpg.UniqueViolationError:
        async with pool.acquire() as conn, conn.transaction():
            return await handlers.on_submission(examined, store(conn))


def _status(document: Document) -> dict[str, Any]:
    return {
        "source": document.source, "external_ref": document.external_ref, "document_id": str(document.document_id),
        "status": document.status, "reason": document.reason,
    }


async def _own_source(pool: asyncpg.Pool, store: Callable[[asyncpg.Connection], PostgresIntakeStore], key: Principal) -> str:
    async with pool.acquire() as conn:
        policy = await store(conn).source_policy(key.name)
    if policy is None or policy.org != key.org:
        raise HTTPException(
            403,
            f"the key `{key.name}` of org `{key.org}` is no registered source's: a submit key is named after its source"
            f" and made in its org (`paraaf keys create --name SOURCE --org ORG --scopes submit`)",
        )
    return policy.source


async def _body(request: Request, source: str, longest: int) -> bytes:
    """The submission as the queue's JSON message."""
    if int(request.headers.get("content-length") or 0) > longest:
        raise HTTPException(413, f"the request is over {describe_size(longest)}; see PARAAF_MAX_PDF_MB")
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "application/json":
        return await request.body()
    if kind == "multipart/form-data":
        return json.dumps(await _form(request, source)).encode()
    raise HTTPException(415, "send the submission as application/json (the queue's message) or multipart/form-data (the PDF as file `pdf`)")


async def _form(request: Request, source: str) -> dict[str, Any]:
    form = await request.form(max_files=1)
    fields: dict[str, Any] = {"source": source}
    for name, value in form.items():
        if isinstance(value, UploadFile):
            if name != "pdf":
                raise HTTPException(422, f"the form's file is `{name}`; send the PDF as file `pdf`")
            fields["pdf"] = base64.b64encode(await value.read()).decode()
        elif name in _JSON_FIELDS:
            try:
                fields[name] = json.loads(value)
            except json.JSONDecodeError as exc:
                raise HTTPException(422, f"form field `{name}` is not valid JSON ({exc})") from None
        else:
            fields[name] = value
    return fields


def _contract(app: FastAPI, document: str | None) -> None:
    as_json = yaml.safe_load(document) if document is not None else None
    missing = PlainTextResponse(
        "This copy of Paraaf was installed without docs/asyncapi.yaml; install it from its source tree (pip install -e .).\n",
        status_code=404,
    )

    @app.get("/asyncapi", tags=["contract"], response_class=Response)
    async def asyncapi_yaml() -> Response:
        """The AsyncAPI 3.0 document of esign.intake, esign.outcomes and esign.events, as YAML."""
        return missing if document is None else Response(document, media_type="application/yaml")

    @app.get("/asyncapi.json", tags=["contract"])
    async def asyncapi_json() -> Response:
        """The same document as JSON."""
        return missing if as_json is None else JSONResponse(as_json)
