"""Many cities on one signer: which organisation a page is asked for, and where an organisation's links point.

A provider gives each organisation a host of its own (``paraaf org create aalst --portal-url
https://aalst.paraaf.example``) and points them all at this one signer, through a proxy that keeps the
Host header. A page is for the organisation whose portal URL has the Host it is asked on; any other Host is
the installation's own organisation (PARAAF_ORG, at PARAAF_PUBLIC_URL). A session, a sign-in link or a
signing link of one organisation does nothing on another's host. The registry (``access.orgs``) is read at
start and every few seconds, so a new organisation's portal works without a restart.
"""

import asyncio
from dataclasses import dataclass

import asyncpg
import structlog

from shared.orgs import portal_host

__all__ = ["OrgPortals"]


@dataclass(frozen=True)
class _Known:
    by_host: dict[str, str]
    urls: dict[str, str]
    names: dict[str, str]


class OrgPortals:
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
