"""Who is signed in to the portal, and how she got there.

- A session is server-side: the browser holds 256 random bits in an HttpOnly
  cookie, the database only their SHA-256, the person, her org, when it began
  and when it was last used. It ends on sign-out, after PARAAF_SESSION_IDLE_MINUTES
  without a request, and PARAAF_SESSION_HOURS after it began, whichever comes first.
- A mailed sign-in link is asked for by address; the notifier asks for the link
  when it sends the mail (as for every link), which works once, for 15 minutes.
  A person gets at most ``ATTEMPTS_PER_WINDOW`` such mails per 15 minutes.
- An OIDC round trip under way is kept by its ``state`` for 10 minutes, with
  its PKCE verifier and nonce; the callback can take it once.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID, uuid4

import asyncpg

from services.signer.tokens import hash_token, mint_token

__all__ = ["ATTEMPTS_PER_WINDOW", "SIGN_IN_TTL", "OidcLogin", "Session", "SessionPolicy", "Sessions"]

SIGN_IN_TTL = timedelta(minutes=15)
OIDC_TTL = timedelta(minutes=10)
PORTAL_LINK_TTL = timedelta(hours=1)
ATTEMPTS_PER_WINDOW = 5
_TOUCH_EVERY = timedelta(seconds=30)  # last_seen_at is written at most this often


@dataclass(frozen=True)
class SessionPolicy:
    idle: timedelta = timedelta(minutes=30)
    absolute: timedelta = timedelta(hours=10)

    def alive(self, session: "Session", now: datetime) -> bool:
        return (
            session.ended_at is None
            and now < session.last_seen_at + self.idle
            and now < session.created_at + self.absolute
        )


@dataclass(frozen=True)
class Session:
    org: str
    person_id: str
    method: str
    created_at: datetime
    last_seen_at: datetime
    ended_at: datetime | None
    id_hash: bytes


@dataclass(frozen=True)
class OidcLogin:
    org: str
    code_verifier: str
    nonce: str


class Sessions:
    """Sessions, sign-in attempts and OIDC round trips in the signer's schema."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def start(self, org: str, person_id: str, method: str, now: datetime) -> str:
        """A new session; returns what the cookie carries."""
        token, token_hash = mint_token()
        await self._conn.execute(
            "INSERT INTO signer.sessions (id_hash, org, person_id, method, created_at, last_seen_at) VALUES ($1, $2, $3, $4, $5, $5)",
            token_hash, org, person_id, method, now,
        )
        return token

    async def find(self, token: str, now: datetime, policy: SessionPolicy, *, touch: bool = True) -> Session | None:
        """The live session behind a cookie (and, with ``touch``, it was used now), or None."""
        if not token:
            return None
        row = await self._conn.fetchrow("SELECT * FROM signer.sessions WHERE id_hash = $1", hash_token(token))
        if row is None:
            return None
        session = Session(row["org"], row["person_id"], row["method"], row["created_at"], row["last_seen_at"], row["ended_at"], row["id_hash"])
        if not policy.alive(session, now):
            return None
        if touch and now - session.last_seen_at >= _TOUCH_EVERY:
            await self._conn.execute("UPDATE signer.sessions SET last_seen_at = $2 WHERE id_hash = $1", session.id_hash, now)
        return session

    async def end(self, token: str, now: datetime) -> None:
        await self._conn.execute(
            "UPDATE signer.sessions SET ended_at = $2 WHERE id_hash = $1 AND ended_at IS NULL", hash_token(token), now
        )

    async def new_attempt(self, org: str, person_id: str, now: datetime) -> UUID | None:
        """A mailed sign-in link asked for; None when she asked too often lately."""
        recent = await self._conn.fetchval(
            "SELECT count(*) FROM signer.sign_in_attempts WHERE org = $1 AND person_id = $2 AND created_at > $3",
            org, person_id, now - SIGN_IN_TTL,
        )
        if recent >= ATTEMPTS_PER_WINDOW:
            return None
        attempt = uuid4()
        await self._conn.execute(
            "INSERT INTO signer.sign_in_attempts (id, org, person_id, created_at) VALUES ($1, $2, $3, $4)",
            attempt, org, person_id, now,
        )
        return attempt

    async def mint_sign_in(self, attempt: UUID, now: datetime) -> tuple[str, datetime, str] | None:
        """The attempt's link token, made as its mail leaves (a resent mail gets a new one; the old stops working),
        and its org (whose portal the link goes to); None when the attempt is unknown, used, or older than the link would live."""
        token, token_hash = mint_token()
        expires_at = now + SIGN_IN_TTL
        org = await self._conn.fetchval(
            "UPDATE signer.sign_in_attempts SET token_hash = $2, expires_at = $3"
            " WHERE id = $1 AND used_at IS NULL AND created_at > $4 RETURNING org",
            attempt, token_hash, expires_at, now - SIGN_IN_TTL,
        )
        return (token, expires_at, org) if org else None

    async def redeem(self, token: str, now: datetime) -> tuple[str, str] | None:
        """(org, person) of a good sign-in link, which is then used up; None for an unknown, used or expired one."""
        row = await self._conn.fetchrow(
            "UPDATE signer.sign_in_attempts SET used_at = $2"
            " WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2 RETURNING org, person_id",
            hash_token(token), now,
        )
        return (row["org"], row["person_id"]) if row else None

    async def signing_link_for(self, request_id: UUID, person_id: str, now: datetime) -> str:
        """A short-lived signing link for a request of the signed-in person, to open the signing page from "To sign".
        Unlike a mailed link it does not retire the link in her mail."""
        token, token_hash = mint_token()
        await self._conn.execute(
            "INSERT INTO signer.tokens (token_hash, request_id, person_id, expires_at) VALUES ($1, $2, $3, $4)",
            token_hash, request_id, person_id, now + PORTAL_LINK_TTL,
        )
        return token

    async def begin_oidc(self, state: str, org: str, code_verifier: str, nonce: str, now: datetime) -> None:
        await self._conn.execute(
            "INSERT INTO signer.oidc_logins (state, org, code_verifier, nonce, created_at) VALUES ($1, $2, $3, $4, $5)",
            state, org, code_verifier, nonce, now,
        )

    async def take_oidc(self, state: str, now: datetime) -> OidcLogin | None:
        """The round trip ``state`` names, once, while it is fresh."""
        row = await self._conn.fetchrow(
            "UPDATE signer.oidc_logins SET used_at = $2 WHERE state = $1 AND used_at IS NULL AND created_at > $3"
            " RETURNING org, code_verifier, nonce",
            state, now, now - OIDC_TTL,
        )
        return OidcLogin(row["org"], row["code_verifier"], row["nonce"]) if row else None
