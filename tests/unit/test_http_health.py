"""Every service's /health: it tells whether the service is up, never why inside."""

import asyncpg
import httpx
import pytest

from shared.http import base_app


class _UnreachableDatabase:
    async def fetchval(self, query: str) -> object:
        raise OSError('connection to 10.0.0.5:5432 failed: password authentication failed for user "paraaf_router"')


async def test_health_with_the_database_away_says_degraded_and_nothing_more() -> None:
    """503 and `degraded`: no host, user or error text from inside reaches the caller."""
    app = base_app("router", lambda: _UnreachableDatabase())  # type: ignore[arg-type, return-value]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://router.test") as client:
        answer = await client.get("/health")
    assert answer.status_code == 503
    assert answer.json() == {"service": "router", "status": "degraded"}


async def test_no_openapi_pages_unless_asked_for() -> None:
    """/docs and /openapi.json answer 404 by default and 200 with docs=True."""
    hidden, shown = base_app("router", lambda: None), base_app("router", lambda: None, docs=True)  # type: ignore[arg-type]
    for app, status in ((hidden, 404), (shown, 200)):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://router.test") as client:
            assert (await client.get("/docs")).status_code == status
            assert (await client.get("/openapi.json")).status_code == status


@pytest.mark.parametrize(
    "cut",
    [
        asyncpg.exceptions.AdminShutdownError("terminating connection due to administrator command"),
        asyncpg.InternalClientError("cannot switch to state 12; another operation (2) is in progress"),
    ],
    ids=["backend terminated", "pooled connection left mid-operation"],
)
async def test_a_database_connection_cut_mid_request_is_a_503_to_try_again_not_a_500(cut: Exception) -> None:
    """A request whose database connection PostgreSQL ended (a restart, pg_terminate_backend) answers 503 with
    Retry-After and a sentence in three languages, without the database's error text."""
    app = base_app("signer", lambda: None)  # type: ignore[arg-type]

    @app.post("/s/{token}/sign")
    async def sign(token: str) -> None:
        raise cut

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://signer.test") as client:
        answer = await client.post("/s/abc/sign")
    assert answer.status_code == 503 and answer.headers["retry-after"] == "5"
    assert "probeer het zo meteen opnieuw" in answer.text and "Please try again" in answer.text
    assert str(cut) not in answer.text


async def test_intake_serves_the_kept_asyncapi_document_and_says_so_when_it_was_not_installed(tmp_path) -> None:
    """/asyncapi answers docs/asyncapi.yaml as YAML (and /asyncapi.json as JSON); without the file, a 404 that says why."""
    from services.intake.http import ASYNCAPI, build_http

    for document, status in ((ASYNCAPI, 200), (tmp_path / "absent.yaml", 404)):
        app = build_http(lambda: None, asyncapi=document)  # type: ignore[arg-type, return-value]
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://intake.test") as client:
            as_yaml, as_json = await client.get("/asyncapi"), await client.get("/asyncapi.json")
        assert (as_yaml.status_code, as_json.status_code) == (status, status)
        if status == 200:
            assert as_yaml.text == ASYNCAPI.read_text() and as_json.json()["asyncapi"] == "3.0.0"
    assert "installed without docs/asyncapi.yaml" in as_yaml.text
