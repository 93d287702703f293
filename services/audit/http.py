"""Audit's HTTP API: the chain's health. Trails and statistics that name
documents wait for the visibility rules (DESIGN.md "Visibility")."""

from collections.abc import Callable

import asyncpg
from fastapi import FastAPI

from services.audit import handlers
from services.audit.store import PostgresAuditStore
from shared.http import base_app

__all__ = ["build_http"]


def build_http(pool: Callable[[], asyncpg.Pool], *, docs: bool = False) -> FastAPI:
    app = base_app("audit", pool, docs=docs)

    @app.get("/chain", tags=["audit"])
    async def chain() -> dict:
        """Verify the whole hash chain: how many entries, and the first break if any."""
        async with pool().acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
            entries, problem = await handlers.verify(PostgresAuditStore(conn))
        return {"entries": entries, "intact": problem is None, "break": problem.__dict__ if problem else None}

    return app
