"""API keys for systems and scripts (schema ``access``): ``paraaf keys create``
prints a key once; only its SHA-256 is kept. A key belongs to one org and has
scopes: ``operate`` (absences, withdrawing documents), ``admin`` (all that
``operate`` may, and more), ``links`` (the notifier asking the signer for a
link at send time), ``submit`` (a source submitting and asking about its own
documents over HTTP: the key's name is the source's, in the source's org). Whoever calls with a key acts as ``operator:<key name>``:
who did something is never taken from a request body.
"""

import hashlib
import secrets
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from uuid import UUID, uuid4

import asyncpg

__all__ = [
    "MIGRATIONS",
    "SCOPES",
    "Principal",
    "create_key",
    "find_key",
    "hash_key",
    "list_keys",
    "revoke_key",
]

MIGRATIONS = Path(str(files("shared").joinpath("access_migrations")))
SCOPES = ("operate", "admin", "links", "submit")
_IMPLIED = {"admin": frozenset({"operate"})}
_PREFIX = "paraaf_"


@dataclass(frozen=True)
class Principal:
    key_id: UUID
    org: str
    name: str
    scopes: frozenset[str]

    @property
    def acting_as(self) -> str:
        return f"operator:{self.name}"

    def allows(self, scope: str) -> bool:
        return scope in self.scopes or any(scope in _IMPLIED.get(s, ()) for s in self.scopes)


def hash_key(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def _principal(row: asyncpg.Record) -> Principal:
    return Principal(row["id"], row["org"], row["name"], frozenset(row["scopes"]))


async def create_key(
    conn: asyncpg.Connection, *, org: str, name: str, scopes: list[str], key: str | None = None
) -> tuple[Principal, str]:
    """A new key (returned once, in clear) for ``name`` in ``org``; ``key`` when the operator chose it."""
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown or not scopes:
        raise ValueError(f"scopes must be some of {', '.join(SCOPES)}; got {', '.join(unknown) or 'none'}")
    if key is not None and (not key.startswith(_PREFIX) or len(key) < len(_PREFIX) + 32):
        raise ValueError(f"a key must start with `{_PREFIX}` and carry at least 32 more characters")
    key = key or _PREFIX + secrets.token_urlsafe(32)
    try:
        row = await conn.fetchrow(
            "INSERT INTO access.api_keys (id, org, name, scopes, key_hash) VALUES ($1, $2, $3, $4, $5) RETURNING *",
            uuid4(),
            org,
            name,
            sorted(set(scopes)),
            hash_key(key),
        )
    except asyncpg.UniqueViolationError:
        raise ValueError(f"organisation `{org}` already has a key named `{name}`; revoke it first or choose another name") from None
    return _principal(row), key


async def find_key(conn: asyncpg.Connection | asyncpg.Pool, key: str) -> Principal | None:
    if not key.startswith(_PREFIX):
        return None
    row = await conn.fetchrow("SELECT * FROM access.api_keys WHERE key_hash = $1 AND revoked_at IS NULL", hash_key(key))
    return _principal(row) if row else None


async def list_keys(conn: asyncpg.Connection, org: str | None = None) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT id, org, name, scopes, created_at, revoked_at FROM access.api_keys"
        " WHERE $1::text IS NULL OR org = $1 ORDER BY created_at",
        org,
    )


async def revoke_key(conn: asyncpg.Connection, *, org: str, name: str) -> bool:
    revoked = await conn.fetchval(
        "UPDATE access.api_keys SET revoked_at = now() WHERE org = $1 AND name = $2 AND revoked_at IS NULL RETURNING true",
        org,
        name,
    )
    return bool(revoked)
