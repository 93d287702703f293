"""What every service's HTTP API starts from: a FastAPI app with ``/health``."""

from collections.abc import Callable

import asyncpg
from fastapi import FastAPI
from fastapi.responses import JSONResponse

__all__ = ["base_app"]


def base_app(service: str, pool: Callable[[], asyncpg.Pool], **fastapi_args: object) -> FastAPI:
    app = FastAPI(title=f"Paraaf {service}", **fastapi_args)

    @app.get("/health", tags=["operations"])
    async def health() -> JSONResponse:
        """200 when the service is up and reaches its database."""
        try:
            await pool().fetchval("SELECT 1")
        except (OSError, asyncpg.PostgresError) as exc:
            return JSONResponse({"service": service, "status": "degraded", "database": str(exc)}, status_code=503)
        return JSONResponse({"service": service, "status": "ok"})

    return app
