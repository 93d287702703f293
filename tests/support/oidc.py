"""A real OpenID Connect provider on the loopback for tests, and the user's part of a sign-in.

The provider is oidc-provider-mock 0.3 (a Flask app on authlib's server
components) served by werkzeug in a background thread of this process. Each
``run_oidc_provider()`` is a provider of its own: its own port, signing key,
users and codes. What it does and does not check (measured with 0.3.4):

- Clients: any ``client_id`` is accepted with any secret and any
  ``redirect_uri``; nothing needs registering. ``register_client`` registers
  one for real (RFC 7591): then its secret and exact redirect URIs are checked.
- Users: the authorization page asks only for the subject (``sub``). Other
  claims come from ``PUT /users/<sub>`` beforehand (``add_user``); a subject
  never put gets ``{"email": sub}``.
- ``nonce`` is required here (``require_nonce=True``) and copied into the id_token.
- PKCE: the mock itself does not check it (0.3.4 registers its code grant
  without authlib's CodeChallenge), so ``run_oidc_provider`` wraps it in
  ``_RequirePkce``: an authorization request without an S256 challenge is
  refused, and a code is exchanged only with the verifier of its own request —
  as Keycloak or Entra ID do with PKCE required.

For a browser (Playwright): the page at the authorization URL has
``SUBJECT_FIELD`` and the ``Authorize`` button (``AUTHORIZE_BUTTON``, or
``get_by_role("button", name="Authorize")``); ``DENY_BUTTON`` refuses, which
sends the browser back with ``error=access_denied`` and, in 0.3.4, no ``state``.
"""

import base64
import hashlib
import hmac
import io
import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import parse_qs, quote, urlsplit

import httpx
import oidc_provider_mock
from werkzeug.serving import ThreadedWSGIServer, WSGIRequestHandler

__all__ = [
    "AUTHORIZE_BUTTON",
    "DENY_BUTTON",
    "SUBJECT_FIELD",
    "OidcProvider",
    "add_user",
    "run_oidc_provider",
    "sign_in_via_provider",
]

SUBJECT_FIELD = 'input[name="sub"]'
AUTHORIZE_BUTTON = 'button[type="submit"]:text-is("Authorize")'
DENY_BUTTON = 'button[name="action"][value="deny"]'


@dataclass(frozen=True)
class OidcProvider:
    issuer: str  # also the base of every endpoint; clients must use this host name, the mock derives `iss` from it
    client_id: str
    client_secret: str

    @property
    def discovery_url(self) -> str:
        return f"{self.issuer}/.well-known/openid-configuration"

    async def add_user(self, client: httpx.AsyncClient, *, sub: str, **claims: object) -> None:
        """Makes ``sub`` sign in with these claims (email, name, ...) from now on."""
        await add_user(client, self.issuer, sub=sub, **claims)

    async def register_client(self, client: httpx.AsyncClient, redirect_uris: list[str]) -> tuple[str, str]:
        """A client whose secret and redirect URIs the provider checks: ``(client_id, client_secret)``."""
        response = await client.post(f"{self.issuer}/oauth2/clients", json={"redirect_uris": redirect_uris})
        response.raise_for_status()
        body = response.json()
        return body["client_id"], body["client_secret"]


async def add_user(client: httpx.AsyncClient, issuer: str, *, sub: str, **claims: object) -> None:
    response = await client.put(f"{issuer}/users/{quote(sub, safe='')}", json=claims)
    response.raise_for_status()


async def sign_in_via_provider(client: httpx.AsyncClient, authorize_url: str, *, sub: str, email: str) -> str:
    """Signs in as ``sub`` with ``email`` the way a person at the provider's page would.

    Returns the provider's redirect back to the relying party (its callback
    URL with ``code`` and ``state``, or ``error``) without following it.
    """
    parts = urlsplit(authorize_url)
    await add_user(client, f"{parts.scheme}://{parts.netloc}", sub=sub, email=email, email_verified=True)
    page = await client.get(authorize_url, follow_redirects=False)
    if page.status_code != 200 or 'name="sub"' not in page.text:
        raise AssertionError(f"the provider showed no sign-in form ({page.status_code}):\n{page.text[:2000]}")
    # The form has no action: the browser posts it to the page's own URL, query string and all.
    answer = await client.post(authorize_url, data={"sub": sub}, follow_redirects=False)
    if not answer.is_redirect:
        raise AssertionError(f"the provider did not send the user back ({answer.status_code}):\n{answer.text[:2000]}")
    return answer.headers["location"]


@contextmanager
def run_oidc_provider(
    *, client_id: str = "paraaf-signer", client_secret: str = "not-checked-by-the-mock"
) -> Iterator[OidcProvider]:
    """A provider on 127.0.0.1 and a free port, for the ``with`` block; stopped with all its threads."""
    app = _RequirePkce(oidc_provider_mock.app(require_nonce=True))
    server = _Server("127.0.0.1", 0, app, handler=_QuietHandler)
    serving = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="oidc-provider")
    serving.start()
    try:
        yield OidcProvider(f"http://127.0.0.1:{server.server_port}", client_id, client_secret)
    finally:
        server.shutdown()
        server.close_connections()
        server.server_close()  # joins every connection thread
        serving.join(timeout=5)
        if serving.is_alive():
            raise RuntimeError("the OIDC provider's server thread did not stop")


class _RequirePkce:
    """WSGI around the provider: remembers each code's S256 challenge from the redirect that hands the code out,
    and refuses (400 invalid_grant) a token request whose verifier does not hash to it."""

    def __init__(self, app) -> None:
        self._app = app
        self._challenges: dict[str, str] = {}
        self._lock = threading.Lock()

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path == "/oauth2/authorize":
            return self._authorize(environ, start_response)
        if path == "/oauth2/token" and environ.get("REQUEST_METHOD") == "POST":
            return self._token(environ, start_response)
        return self._app(environ, start_response)

    def _authorize(self, environ, start_response):
        query = parse_qs(environ.get("QUERY_STRING", ""))
        challenge, method = query.get("code_challenge", [""])[0], query.get("code_challenge_method", [""])[0]
        if not challenge or method != "S256":
            return _refuse(start_response, "invalid_request", "PKCE (S256) is required")

        def remember(status, headers, exc_info=None):
            for name, value in headers:
                if name.lower() == "location" and (code := parse_qs(urlsplit(value).query).get("code")):
                    with self._lock:
                        self._challenges[code[0]] = challenge
            return start_response(status, headers, exc_info)

        return self._app(environ, remember)

    def _token(self, environ, start_response):
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        form = parse_qs(body.decode())
        code, verifier = form.get("code", [""])[0], form.get("code_verifier", [""])[0]
        with self._lock:
            challenge = self._challenges.pop(code, None)
        if form.get("grant_type", [""])[0] == "authorization_code":
            expected = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
            if challenge is None or not verifier or not hmac.compare_digest(expected, challenge):
                return _refuse(start_response, "invalid_grant", "the code_verifier does not match the code's challenge")
        environ["wsgi.input"], environ["CONTENT_LENGTH"] = io.BytesIO(body), str(len(body))
        return self._app(environ, start_response)


def _refuse(start_response, error: str, description: str):
    body = json.dumps({"error": error, "error_description": description}).encode()
    start_response("400 Bad Request", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


class _Server(ThreadedWSGIServer):
    """Werkzeug's threaded server, stoppable with keep-alive connections open.

    Its connection threads are daemons that a client's idle keep-alive
    connection would keep alive after the test; here they are joined at close,
    after their sockets are shut so they see end-of-file.
    """

    daemon_threads = False
    block_on_close = True

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._connections: set[socket.socket] = set()
        self._lock = threading.Lock()

    def process_request(self, request, client_address) -> None:
        with self._lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request) -> None:
        with self._lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # the client closed it meanwhile


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, code="-", size="-") -> None:
        pass  # one access line per request is noise in test output; errors are still logged
