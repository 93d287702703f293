"""Sign-in with the city's identity provider over OpenID Connect: the
authorization code flow with PKCE (S256), a nonce in the ID token, and the ID
token's signature and claims checked against the provider's published keys.
Entra ID, Keycloak or ACM/IDM are each an issuer URL, a client id and a secret
(PARAAF_OIDC_ISSUER, PARAAF_OIDC_CLIENT_ID, PARAAF_OIDC_CLIENT_SECRET).
"""

import time
from dataclasses import dataclass
from typing import Any

import httpx
from authlib.common.security import generate_token
from authlib.common.urls import add_params_to_uri
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

__all__ = ["OidcClient", "OidcConfig", "SignInFailed", "StartedLogin"]

_METADATA_SECONDS = 3600.0


class SignInFailed(Exception):
    """The provider's answer cannot be trusted or used; the message says why (for the log, not the page)."""


@dataclass(frozen=True)
class OidcConfig:
    issuer: str
    client_id: str
    client_secret: str
    redirect_uri: str
    claim: str = "email"  # the ID token claim that names the person
    scope: str = "openid email profile"


@dataclass(frozen=True)
class StartedLogin:
    url: str
    state: str
    code_verifier: str
    nonce: str


class OidcClient:
    """One relying party: the provider's metadata and keys are fetched when first needed and kept an hour."""

    def __init__(self, config: OidcConfig, *, timeout: float = 10.0) -> None:
        self.config = config
        self._timeout = timeout
        self._metadata: dict | None = None
        self._fetched_at = 0.0
        self._keys: Any = None

    async def metadata(self) -> dict:
        if self._metadata is None or time.monotonic() - self._fetched_at > _METADATA_SECONDS:
            url = self.config.issuer.rstrip("/") + "/.well-known/openid-configuration"
            async with httpx.AsyncClient(timeout=self._timeout) as client:
                found = (await client.get(url)).raise_for_status().json()
            if found.get("issuer", "").rstrip("/") != self.config.issuer.rstrip("/"):
                raise SignInFailed(f"the provider at {url} calls itself {found.get('issuer')!r}, not {self.config.issuer!r}")
            self._metadata, self._fetched_at, self._keys = found, time.monotonic(), None
        return self._metadata

    async def start(self) -> StartedLogin:
        """Where to send the browser, and what the callback must check."""
        metadata = await self.metadata()
        state, verifier, nonce = generate_token(32), generate_token(48), generate_token(32)
        c = self.config
        url = add_params_to_uri(metadata["authorization_endpoint"], [
            ("response_type", "code"), ("client_id", c.client_id), ("redirect_uri", c.redirect_uri), ("scope", c.scope),
            ("state", state), ("nonce", nonce), ("code_challenge", create_s256_code_challenge(verifier)),
            ("code_challenge_method", "S256"),
        ])
        return StartedLogin(url, state, verifier, nonce)

    async def identity(self, code: str, code_verifier: str, nonce: str) -> str:
        """The configured claim of the person the provider signed in (exchanging ``code`` with the PKCE verifier)."""
        token = await self._exchange(code, code_verifier)
        if "id_token" not in token:
            raise SignInFailed("the provider's answer holds no ID token")
        claims = await self._claims(token["id_token"], nonce)
        value = claims.get(self.config.claim)
        if not isinstance(value, str) or not value:
            raise SignInFailed(f"the ID token has no `{self.config.claim}` claim")
        if self.config.claim == "email" and claims.get("email_verified") is False:
            raise SignInFailed("the provider says the e-mail address is not verified")
        return value

    async def _exchange(self, code: str, code_verifier: str) -> dict:
        """The token endpoint's answer for ``code``, authenticated with the client secret (client_secret_basic)."""
        c = self.config
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": c.redirect_uri, "code_verifier": code_verifier}
        try:
            async with httpx.AsyncClient(timeout=self._timeout) as client:
                response = await client.post((await self.metadata())["token_endpoint"], data=form, auth=(c.client_id, c.client_secret))
        except httpx.HTTPError as exc:
            raise SignInFailed(f"the provider's token endpoint does not answer: {exc!r}") from None
        if response.status_code != 200:
            raise SignInFailed(f"the provider refused the code: {response.status_code} {response.text[:200]}")
        return response.json()

    async def _claims(self, id_token: str, nonce: str) -> dict:
        expected = jwt.JWTClaimsRegistry(
            leeway=60,
            iss={"essential": True, "value": (await self.metadata())["issuer"]},
            aud={"essential": True, "value": self.config.client_id},
            nonce={"essential": True, "value": nonce},
            exp={"essential": True},
        )
        try:
            token = jwt.decode(id_token, await self._key_set())
            expected.validate(token.claims)
        except (JoseError, ValueError) as exc:
            raise SignInFailed(f"the ID token does not hold: {exc!r}") from None
        return dict(token.claims)

    async def _key_set(self) -> Any:
        if self._keys is None:
            async with httpx.AsyncClient(timeout=self._timeout) as client:
                jwks = (await client.get((await self.metadata())["jwks_uri"])).raise_for_status().json()
            self._keys = KeySet.import_key_set(jwks)
        return self._keys
