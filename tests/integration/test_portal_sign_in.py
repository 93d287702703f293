"""Signing in to the portal, the signer's app in the test's process on a real
database: by the one-time mailed link (the test plays the notifier asking for
the link, as it does when the mail leaves) and with a real OIDC provider on
the loopback; the session cookie's attributes; idle and absolute time-outs;
sign-out; and the ways an OIDC callback can be wrong."""

from collections.abc import AsyncIterator
from datetime import timedelta
from uuid import uuid4

import httpx
import pytest

from services.signer.http import PortalConfig
from services.signer.http._portal_auth import OIDC_COOKIE, SESSION_COOKIE
from services.signer.oidc import OidcClient, OidcConfig
from services.signer.pades import SigningPool
from services.signer.render import RenderPool
from services.signer.sessions import SessionPolicy
from tests.support.oidc import OidcProvider, sign_in_via_provider
from tests.support.portal import ask_for_sign_in_link, csrf_on
from tests.support.signer_harness import SignerHarness

CALLBACK = "http://signer.test/p/auth/callback"


async def _people(signer: SignerHarness) -> None:
    await signer.pool.execute(
        "INSERT INTO router.people (org, id, name, email, department) VALUES"
        " ('default', 'karel', 'Karel Claes', 'Karel.Claes@city.example', 'Personeel'),"
        " ('elders', 'zoe', 'Zoë', 'zoe@elders.example', 'Personeel')"
    )


@pytest.fixture
async def signer(database_url: str, signing_pool: SigningPool, render_pool: RenderPool) -> AsyncIterator[SignerHarness]:
    async with SignerHarness(database_url, signing_pool, render_pool) as harness:  # with two people in its directory
        await _people(harness)
        yield harness


async def _mailed_link(signer: SignerHarness, email: str) -> str | None:
    """Ask for a link as a person does, then be the notifier sending the mail: the link it gets from the signer."""
    await ask_for_sign_in_link(signer.client, email)
    commands = await signer.published("notify.sign-in-link")
    if not commands:
        return None
    answer = await signer.client.post(
        "/internal/links", json={"kind": "sign_in", "request_id": commands[-1]["correlation_id"], "mail_id": str(uuid4())},
        headers={"Authorization": f"Bearer {signer.links_key}"},
    )
    assert answer.status_code == 201, answer.text
    assert "title" not in commands[-1] and commands[-1]["recipient"]["id"] == "karel"
    return httpx.URL(answer.json()["url"]).path


async def _use(signer: SignerHarness, path: str) -> httpx.Response:
    page = await signer.client.get(path)
    return await signer.client.post(path, data={"csrf": csrf_on(page)})


async def test_a_mailed_link_signs_her_in_with_a_session_cookie_only_the_portal_gets(signer: SignerHarness) -> None:
    path = await _mailed_link(signer, "karel.claes@CITY.example")
    assert path is not None and path.startswith("/p/sign-in/")
    answer = await _use(signer, path)
    assert answer.status_code == 303 and answer.headers["location"] == "/p/"
    cookie = next(h for h in answer.headers.get_list("set-cookie") if h.startswith(SESSION_COOKIE + "="))
    attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "path", "samesite", "max-age"} <= attributes and "secure" not in attributes, cookie
    assert "Path=/p" in cookie and "SameSite=lax" in cookie
    page = await signer.client.get("/p/to-sign")
    assert page.status_code == 200 and "Karel Claes" in page.text


async def test_on_https_the_session_cookie_is_secure(database_url: str, signing_pool: SigningPool, render_pool: RenderPool) -> None:
    async with SignerHarness(database_url, signing_pool, render_pool, secure_cookies=True) as signer:
        await _people(signer)
        signer.client.base_url = httpx.URL("https://signer.test")  # a browser sends Secure cookies over https only
        path = await _mailed_link(signer, "karel.claes@city.example")
        assert path is not None
        cookie = next(h for h in (await _use(signer, path)).headers.get_list("set-cookie") if h.startswith(SESSION_COOKIE + "="))
        assert "Secure" in cookie, cookie


async def test_another_org_s_address_or_an_unknown_one_gets_no_link(signer: SignerHarness) -> None:
    for email in ("zoe@elders.example", "nobody@city.example"):
        assert await _mailed_link(signer, email) is None


async def test_after_five_links_in_fifteen_minutes_no_more_are_sent(signer: SignerHarness) -> None:
    for _ in range(7):
        answer = await ask_for_sign_in_link(signer.client, "karel.claes@city.example")
        assert answer.status_code == 303
    assert len(await signer.published("notify.sign-in-link")) == 5


async def _signed_in(signer: SignerHarness) -> None:
    path = await _mailed_link(signer, "karel.claes@city.example")
    assert path is not None and (await _use(signer, path)).status_code == 303


@pytest.mark.parametrize(
    ("column", "age", "ends"),
    [("last_seen_at", timedelta(minutes=29), False), ("last_seen_at", timedelta(minutes=31), True),
     ("created_at", timedelta(hours=10, minutes=1), True)],
)
async def test_a_session_ends_after_30_idle_minutes_or_10_hours(signer: SignerHarness, column: str, age: timedelta, ends: bool) -> None:
    await _signed_in(signer)
    await signer.pool.execute(f"UPDATE signer.sessions SET {column} = {column} - $1::interval", age)
    answer = await signer.client.get("/p/to-sign")
    assert (answer.status_code == 303 and answer.headers["location"] == "/p/sign-in?next=/p/to-sign") is ends, answer.status_code


async def test_sign_out_ends_the_session_on_the_server_not_only_in_the_browser(signer: SignerHarness) -> None:
    await _signed_in(signer)
    kept = signer.client.cookies.get(SESSION_COOKIE)
    page = await signer.client.get("/p/to-sign")
    answer = await signer.client.post("/p/sign-out", data={"csrf": csrf_on(page)})
    assert answer.status_code == 200 and "U bent afgemeld." in answer.text
    signer.client.cookies.set(SESSION_COOKIE, kept or "", domain="signer.test", path="/p")
    assert (await signer.client.get("/p/to-sign")).status_code == 303, "the old cookie is worth nothing"


@pytest.fixture
async def with_oidc(database_url: str, signing_pool: SigningPool, render_pool: RenderPool, oidc_provider: OidcProvider
                    ) -> AsyncIterator[SignerHarness]:
    config = OidcConfig(oidc_provider.issuer, oidc_provider.client_id, oidc_provider.client_secret, CALLBACK)
    portal = PortalConfig(oidc=OidcClient(config), sessions=SessionPolicy())
    async with SignerHarness(database_url, signing_pool, render_pool, portal=portal) as signer:
        await _people(signer)
        yield signer


async def _to_provider(signer: SignerHarness) -> tuple[str, str]:
    """Press "sign in with the city's account": (the provider's authorization URL, the state cookie)."""
    answer = await signer.client.get("/p/auth/start")
    assert answer.status_code == 303
    return answer.headers["location"], signer.client.cookies[OIDC_COOKIE]


async def test_oidc_sign_in_matches_the_directory_person_by_the_email_claim(with_oidc: SignerHarness) -> None:
    authorize, _ = await _to_provider(with_oidc)
    assert "code_challenge=" in authorize and "code_challenge_method=S256" in authorize and "nonce=" in authorize
    async with httpx.AsyncClient() as user_agent:
        back = await sign_in_via_provider(user_agent, authorize, sub="kc-123", email="karel.claes@city.example")
    answer = await with_oidc.client.get(back)
    assert answer.status_code == 303 and answer.headers["location"] == "/p/"
    assert "Karel Claes" in (await with_oidc.client.get("/p/to-sign")).text
    assert (await with_oidc.client.get(back)).status_code == 400, "the same callback twice (its state is used up)"


async def test_oidc_callbacks_that_cannot_be_trusted_make_no_session(with_oidc: SignerHarness) -> None:
    """Another browser's state, no state, a forged code, and a person the directory does not know."""
    async with httpx.AsyncClient() as user_agent:
        authorize, _ = await _to_provider(with_oidc)
        back = await sign_in_via_provider(user_agent, authorize, sub="kc-1", email="karel.claes@city.example")
        with_oidc.client.cookies.delete(OIDC_COOKIE)
        assert (await with_oidc.client.get(back)).status_code == 400, "a callback without this browser's state cookie"
        authorize, state = await _to_provider(with_oidc)
        assert (await with_oidc.client.get(f"/p/auth/callback?code=forged&state={state}")).status_code == 403
        authorize, _ = await _to_provider(with_oidc)
        back = await sign_in_via_provider(user_agent, authorize, sub="kc-9", email="stranger@city.example")
        unknown = await with_oidc.client.get(back)
        assert unknown.status_code == 403 and "niet in de personeelslijst" in unknown.text
        authorize, _ = await _to_provider(with_oidc)
        back = await sign_in_via_provider(user_agent, authorize, sub="kc-z", email="zoe@elders.example")
        assert (await with_oidc.client.get(back)).status_code == 403, "a person of another org"
    assert await with_oidc.pool.fetchval("SELECT count(*) FROM signer.sessions") == 0
    assert (await with_oidc.client.post("/p/sign-in", data={"email": "karel.claes@city.example"})).status_code == 404, (
        "with a provider, no mailed links"
    )


async def test_after_signing_in_she_lands_where_she_was_going(signer: SignerHarness) -> None:
    """A link to a page of the portal, opened signed out, leads to sign-in and then back to that page (never elsewhere)."""
    first = await signer.client.get("/p/signed")
    assert first.status_code == 303 and first.headers["location"] == "/p/sign-in?next=/p/signed"
    await signer.client.get(first.headers["location"])
    path = await _mailed_link(signer, "karel.claes@city.example")
    assert path is not None
    assert (await _use(signer, path)).headers["location"] == "/p/signed"
    signer.client.cookies.clear()
    await signer.client.get("/p/sign-in?next=https://evil.example/")
    path = await _mailed_link(signer, "karel.claes@city.example")
    assert path is not None and (await _use(signer, path)).headers["location"] == "/p/"
