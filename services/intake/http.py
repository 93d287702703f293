"""Intake's HTTP API: health, and the contract integrators code against —
the AsyncAPI document of the messages (``/asyncapi``, the copy kept in docs/,
which a test keeps equal to what the services generate). Document reads wait
for the visibility rules (DESIGN.md "Visibility")."""

from collections.abc import Callable
from pathlib import Path

import asyncpg
import yaml
from fastapi import FastAPI
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from shared.http import base_app

__all__ = ["ASYNCAPI", "build_http"]

ASYNCAPI = Path(__file__).resolve().parents[2] / "docs" / "asyncapi.yaml"


def build_http(pool: Callable[[], asyncpg.Pool], *, docs: bool = False, asyncapi: Path = ASYNCAPI) -> FastAPI:
    app = base_app("intake", pool, docs=docs)
    _contract(app, asyncapi.read_text() if asyncapi.is_file() else None)
    return app


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
