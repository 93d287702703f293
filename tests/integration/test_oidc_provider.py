"""The test OpenID Connect provider (tests/support/oidc.py) against authlib used
the way the signer will use it: discovery, authorization code with PKCE and a
nonce, code exchange, and the id_token checked against the provider's keys."""

import asyncio
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from authlib.common.security import generate_token
from authlib.integrations.base_client import OAuthError
from authlib.integrations.httpx_client import AsyncOAuth2Client
from authlib.jose import JsonWebKey, jwt
from authlib.jose.errors import InvalidClaimError

from tests.support.net import free_port
from tests.support.oidc import OidcProvider, run_oidc_provider, sign_in_via_provider

SCOPE = "openid email profile"


@dataclass
class SignIn:
    oauth: AsyncOAuth2Client
    metadata: dict
    authorize_url: str
    state: str
    verifier: str
    nonce: str


@pytest.fixture
async def http_client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as client:
        yield client


async def start_sign_in(provider: OidcProvider, client_id: str, client_secret: str, redirect_uri: str) -> SignIn:
    async with httpx.AsyncClient(timeout=10) as client:
        metadata = (await client.get(provider.discovery_url)).raise_for_status().json()
    oauth = AsyncOAuth2Client(
        client_id, client_secret, scope=SCOPE, redirect_uri=redirect_uri, code_challenge_method="S256", timeout=10
    )
    verifier, nonce = generate_token(48), generate_token(24)
    url, state = oauth.create_authorization_url(metadata["authorization_endpoint"], code_verifier=verifier, nonce=nonce)
    return SignIn(oauth, metadata, url, state, verifier, nonce)


def callback_query(redirect: str) -> dict[str, str]:
    return {name: values[0] for name, values in parse_qs(urlsplit(redirect).query).items()}


@pytest.fixture
def redirect_uri() -> str:
    return f"http://127.0.0.1:{free_port()}/auth/callback"


async def test_sign_in_yields_a_signed_id_token_for_the_user_with_the_email_given(
    oidc_provider: OidcProvider, http_client: httpx.AsyncClient, redirect_uri: str
):
    """A sign-in as `jan.peeters` ends in an id_token signed by the provider that names him and his email."""
    sign_in = await start_sign_in(oidc_provider, oidc_provider.client_id, oidc_provider.client_secret, redirect_uri)
    async with sign_in.oauth as oauth:
        redirect = await sign_in_via_provider(
            http_client, sign_in.authorize_url, sub="jan.peeters", email="jan.peeters@gent.example"
        )
        assert redirect.startswith(redirect_uri + "?")
        answer = callback_query(redirect)
        assert answer["state"] == sign_in.state

        token = await oauth.fetch_token(sign_in.metadata["token_endpoint"], code=answer["code"], code_verifier=sign_in.verifier)
        jwks = (await http_client.get(sign_in.metadata["jwks_uri"])).raise_for_status().json()

    claims = jwt.decode(
        token["id_token"],
        JsonWebKey.import_key_set(jwks),
        claims_options={
            "iss": {"essential": True, "value": oidc_provider.issuer},
            "aud": {"essential": True, "value": oidc_provider.client_id},
            "nonce": {"essential": True, "value": sign_in.nonce},
        },
    )
    claims.validate()
    assert sign_in.metadata["issuer"] == oidc_provider.issuer
    assert (claims["sub"], claims["email"]) == ("jan.peeters", "jan.peeters@gent.example")


async def test_an_id_token_from_another_sign_in_fails_the_nonce_check(
    oidc_provider: OidcProvider, http_client: httpx.AsyncClient, redirect_uri: str
):
    """An id_token is refused when its nonce is not the one this sign-in sent (a replayed token)."""
    sign_in = await start_sign_in(oidc_provider, oidc_provider.client_id, oidc_provider.client_secret, redirect_uri)
    async with sign_in.oauth as oauth:
        redirect = await sign_in_via_provider(http_client, sign_in.authorize_url, sub="an", email="an@gent.example")
        token = await oauth.fetch_token(
            sign_in.metadata["token_endpoint"], code=callback_query(redirect)["code"], code_verifier=sign_in.verifier
        )
        jwks = (await http_client.get(sign_in.metadata["jwks_uri"])).json()
    claims = jwt.decode(
        token["id_token"],
        JsonWebKey.import_key_set(jwks),
        claims_options={"nonce": {"essential": True, "value": generate_token(24)}},
    )
    with pytest.raises(InvalidClaimError, match="nonce"):
        claims.validate()


async def test_an_authorization_request_without_nonce_is_refused(
    oidc_provider: OidcProvider, http_client: httpx.AsyncClient, redirect_uri: str
):
    """The provider sends the user back with an error when the sign-in request carries no nonce."""
    async with AsyncOAuth2Client(
        oidc_provider.client_id,
        oidc_provider.client_secret,
        scope=SCOPE,
        redirect_uri=redirect_uri,
        code_challenge_method="S256",
    ) as oauth:
        url, _ = oauth.create_authorization_url(f"{oidc_provider.issuer}/oauth2/authorize", code_verifier=generate_token(48))
    answer = await http_client.post(url, data={"sub": "an"})
    assert answer.is_redirect
    assert callback_query(answer.headers["location"])["error"] == "invalid_request"


async def test_a_code_exchanged_with_the_wrong_verifier_is_refused(
    oidc_provider: OidcProvider, http_client: httpx.AsyncClient, redirect_uri: str
):
    """A stolen code is useless without this sign-in's PKCE verifier."""
    sign_in = await start_sign_in(oidc_provider, oidc_provider.client_id, oidc_provider.client_secret, redirect_uri)
    async with sign_in.oauth as oauth:
        redirect = await sign_in_via_provider(http_client, sign_in.authorize_url, sub="an", email="an@gent.example")
        with pytest.raises(OAuthError, match="invalid_grant"):
            await oauth.fetch_token(
                sign_in.metadata["token_endpoint"], code=callback_query(redirect)["code"], code_verifier=generate_token(48)
            )


async def test_a_registered_client_must_present_its_secret(
    oidc_provider: OidcProvider, http_client: httpx.AsyncClient, redirect_uri: str
):
    """A registered client that sends the wrong secret gets no tokens for a valid code."""
    client_id, _secret = await oidc_provider.register_client(http_client, [redirect_uri])
    sign_in = await start_sign_in(oidc_provider, client_id, "wrong-secret", redirect_uri)
    async with sign_in.oauth as oauth:
        redirect = await sign_in_via_provider(http_client, sign_in.authorize_url, sub="an", email="an@gent.example")
        with pytest.raises(OAuthError, match="invalid_client"):
            await oauth.fetch_token(
                sign_in.metadata["token_endpoint"], code=callback_query(redirect)["code"], code_verifier=sign_in.verifier
            )


async def test_stopping_the_provider_ends_all_its_threads_even_with_an_idle_connection_open():
    """After the provider stops none of its threads run, though a browser's idle pre-connection is still open."""
    before = set(threading.enumerate())
    with run_oidc_provider() as provider:
        async with httpx.AsyncClient(timeout=10) as client:
            (await client.get(provider.discovery_url)).raise_for_status()
        port = urlsplit(provider.issuer).port
        # A connection that never sends a request, as a browser opens ahead of need: its thread waits to read.
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        await asyncio.sleep(0.1)
        assert len(set(threading.enumerate()) - before) == 2  # the server and the idle connection's
    assert set(threading.enumerate()) - before == set()
    assert await reader.read() == b""  # the provider closed it
    writer.close()
