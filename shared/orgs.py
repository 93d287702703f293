"""The organisations one installation serves (table ``access.orgs``): a key that
every record and event carries, a name for pages, mails and certificates, and
the portal URL its people use (the signer tells organisations apart by the Host
a page is asked on; links in mails point there). ``paraaf org create`` adds one;
``paraaf setup`` registers the installation's own (PARAAF_ORG)."""

import asyncio
import re
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

import asyncpg
import structlog

__all__ = ["ORG_KEY", "Org", "OrgPortals", "UnknownOrg", "check_key", "check_portal_url", "create_org", "find_org", "list_orgs", "portal_host", "require_org"]

ORG_KEY = r"[a-z0-9][a-z0-9_-]{1,39}"


class UnknownOrg(LookupError):
    """An organisation key that no ``paraaf org create`` made."""


@dataclass(frozen=True)
class Org:
    key: str
    name: str
    portal_url: str | None
    created_at: datetime


def check_key(key: str) -> str:
    if not re.fullmatch(ORG_KEY, key):
        raise ValueError(f"`{key}` is not an organisation key: 2 to 40 lower-case letters, digits, _ or -, starting with a letter or digit")
    return key


def portal_host(url: str) -> str:
    """What a browser sends as Host for a page under ``url`` (lower case; the port only when it is not the scheme's own)."""
    parts = urlsplit(url)
    default = {"http": 80, "https": 443}.get(parts.scheme)
    host = (parts.hostname or "").lower()
    return host if parts.port in (None, default) else f"{host}:{parts.port}"


def check_portal_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/") or parts.query:
        raise ValueError(f"a portal URL is http(s)://HOST[:PORT] with no path (the portal is /p/ under it), not `{url}`")
    return url.rstrip("/")


def _org(row: asyncpg.Record) -> Org:
    return Org(row["key"], row["name"], row["portal_url"], row["created_at"])


async def create_org(conn: asyncpg.Connection, key: str, name: str, portal_url: str | None) -> tuple[Org, bool]:
    """Register ``key`` (or change its name and portal); whether it is new."""
    check_key(key)
    if not name.strip():
        raise ValueError("an organisation needs a name, e.g. --name \"Stad Aalst\"")
    url = check_portal_url(portal_url) if portal_url else None
    if url is not None:
        taken = await conn.fetchval("SELECT key FROM access.orgs WHERE portal_url = $1 AND key <> $2", url, key)
        if taken:
            raise ValueError(f"portal {url} is organisation `{taken}`'s already; each organisation needs its own host")
    row = await conn.fetchrow(
        "INSERT INTO access.orgs (key, name, portal_url) VALUES ($1, $2, $3)"
        " ON CONFLICT (key) DO UPDATE SET name = EXCLUDED.name, portal_url = coalesce(EXCLUDED.portal_url, orgs.portal_url)"
        " RETURNING *, (xmax = 0) AS inserted",
        key, name.strip(), url,
    )
    return _org(row), row["inserted"]


async def find_org(conn: asyncpg.Connection | asyncpg.Pool, key: str) -> Org | None:
    row = await conn.fetchrow("SELECT * FROM access.orgs WHERE key = $1", key)
    return _org(row) if row else None


async def list_orgs(conn: asyncpg.Connection | asyncpg.Pool) -> list[Org]:
    return [_org(row) for row in await conn.fetch("SELECT * FROM access.orgs ORDER BY key")]


async def require_org(conn: asyncpg.Connection | asyncpg.Pool, key: str) -> Org:
    """The organisation ``key``, or UnknownOrg saying which ones there are and how to add one."""
    found = await find_org(conn, key)
    if found is None:
        known = ", ".join(o.key for o in await list_orgs(conn)) or "none"
        raise UnknownOrg(f"no organisation `{key}` (known: {known}); create it with `paraaf org create {key} --name \"...\"`")
    return found


@dataclass(frozen=True)
class _Known:
    by_host: dict[str, str]
    urls: dict[str, str]
    names: dict[str, str]


class OrgPortals:
    """Which organisation a page is asked for (by its Host: a provider points every city's host at one signer,
    through a proxy that keeps the Host header; any other Host is PARAAF_ORG's), where each one's portal is, and
    its name; re-read from the registry every few seconds, so a new organisation works without a restart."""

    def __init__(self, home: str, public_url: str, *, every: float = 5.0) -> None:
        self.home = home
        self._public_url = public_url.rstrip("/")
        self._every = every
        self._known = _Known({}, {}, {})

    def org_at(self, host: str | None) -> str:
        """The organisation whose portal is at ``host`` (a request's Host header); else the installation's own."""
        return self._known.by_host.get((host or "").lower(), self.home)

    def url_of(self, org: str) -> str:
        """Where ``org``'s portal and links live: its portal URL, else PARAAF_PUBLIC_URL."""
        return self._known.urls.get(org, self._public_url)

    def name_of(self, org: str) -> str | None:
        return self._known.names.get(org)

    async def refresh(self, conn: asyncpg.Connection | asyncpg.Pool) -> None:
        rows = await conn.fetch("SELECT key, name, portal_url FROM access.orgs")
        urls = {r["key"]: r["portal_url"].rstrip("/") for r in rows if r["portal_url"]}
        self._known = _Known({portal_host(url): key for key, url in urls.items()}, urls, {r["key"]: r["name"] for r in rows})

    async def run(self, pool: asyncpg.Pool) -> None:
        """Re-read the registry every few seconds, for the life of the service."""
        while True:
            try:
                await self.refresh(pool)
            except (OSError, asyncpg.PostgresError) as exc:  # keep the portals known so far; try again
                structlog.get_logger().warning("organisations not re-read", error=repr(exc))
            await asyncio.sleep(self._every)
