"""The router's HTTP API: absences, and withdrawing a document.

Every endpoint needs an API key with the ``operate`` scope (``paraaf keys
create``); the key's org is the org acted on, and the key's name is who
acted. Bound to PARAAF_HTTP_HOST (127.0.0.1 by default).
"""

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import asyncpg
from fastapi import APIRouter, FastAPI, HTTPException, Response
from pydantic import BaseModel, ConfigDict, Field

from services.router import directory, handlers
from services.router.importer import parse_moment
from services.router.store import PostgresRouterStore, StoredAbsence
from shared.apikeys import Principal
from shared.errors import CodedError
from shared.http import base_app, require_scope
from shared.messaging import Outbox

__all__ = ["RouterApiDeps", "build_http"]

_STATUS = {"unknown_document": 404, "not_allowed": 403, "ended": 409}


@dataclass(frozen=True)
class RouterApiDeps:
    """What the router's HTTP API is built from."""

    pool: Callable[[], asyncpg.Pool]
    outbox: Outbox
    timezone: str
    after_commit: Callable[[], None]
    docs: bool = False

    @asynccontextmanager
    async def store(self) -> AsyncIterator[PostgresRouterStore]:
        """The router's store in a transaction of its own."""
        async with self.pool().acquire() as conn, conn.transaction():
            yield PostgresRouterStore(conn, self.outbox)


class AbsenceIn(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    person: str = Field(min_length=1, examples=["bart.baert"])
    starts: str = Field(alias="from", examples=["2026-07-01"], description="date or date-time; local time unless it has an offset")
    ends: str = Field(alias="to", examples=["2026-08-01"], description="the first moment back (exclusive)")
    note: str = ""


class WithdrawIn(BaseModel):
    reason: str = Field(min_length=1, description="told to the source system")


def build_http(deps: RouterApiDeps) -> FastAPI:
    app = base_app("router", deps.pool, docs=deps.docs)
    operator = require_scope(deps.pool, "operate")
    app.include_router(_absences(deps, operator))
    app.include_router(_documents(deps, operator))
    return app


def _absences(deps: RouterApiDeps, operator: Any) -> APIRouter:
    router = APIRouter(tags=["absences"])

    @router.post("/absences", status_code=201)
    async def add_absence(absence: AbsenceIn, key: Principal = operator) -> dict:
        """Register an absence; open requests move to substitutes when it starts."""
        starts_at, ends_at = _moments(absence, deps.timezone)
        note = absence.note or f"by {key.acting_as}"
        async with deps.store() as store:
            try:
                absence_id = await directory.add_absence(store, key.org, absence.person, starts_at, ends_at, note=note)
            except directory.UnknownPerson as exc:
                raise HTTPException(404, str(exc)) from None
            except ValueError as exc:
                raise HTTPException(422, str(exc)) from None
        return {"id": str(absence_id), "person": absence.person, "from": starts_at, "to": ends_at}

    @router.get("/absences")
    async def list_absences(person: str | None = None, key: Principal = operator) -> list[dict]:
        """Absences, optionally of one person, oldest first."""
        async with deps.store() as store:
            return [_absence_out(a) for a in await store.absences(key.org, person)]

    @router.delete("/absences/{absence_id}", status_code=204)
    async def remove_absence(absence_id: UUID, key: Principal = operator) -> Response:
        """Remove an absence (work it already moved stays where it went)."""
        async with deps.store() as store:
            if not await store.remove_absence(key.org, absence_id):
                raise HTTPException(404, f"no absence {absence_id}")
        return Response(status_code=204)

    return router


def _documents(deps: RouterApiDeps, operator: Any) -> APIRouter:
    router = APIRouter(tags=["documents"])

    @router.post("/documents/{document_id}/withdraw", status_code=202)
    async def withdraw(document_id: UUID, body: WithdrawIn, key: Principal = operator) -> dict:
        """Stop a document: its open requests are cancelled and its source is told."""
        async with deps.store() as store:
            try:
                await handlers.withdraw(store, document_id, org=key.org, by=key.acting_as, reason=body.reason)
            except CodedError as refusal:
                detail = f"there is no document {document_id}" if refusal.code == "unknown_document" else refusal.reason
                raise HTTPException(_STATUS[refusal.code], detail) from None
        deps.after_commit()
        return {"document_id": str(document_id), "status": "withdrawn"}

    return router


def _moments(absence: AbsenceIn, timezone: str) -> tuple:
    try:
        return parse_moment(absence.starts, timezone), parse_moment(absence.ends, timezone)
    except ValueError:
        raise HTTPException(422, "`from` and `to` must be dates (2026-07-01) or date-times (2026-07-01T14:00)") from None


def _absence_out(stored: StoredAbsence) -> dict:
    a = stored.absence
    return {"id": stored.id, "person_id": a.person_id, "starts_at": a.starts_at, "ends_at": a.ends_at,
            "source": stored.source, "note": stored.note, "applied_at": stored.applied_at}
