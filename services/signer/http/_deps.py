"""What the signer's HTTP surface is built from."""

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime

import asyncpg
from starlette.requests import HTTPConnection

from services.signer.check import CheckLimits
from services.signer.domain import Links
from services.signer.keys import Keyring
from services.signer.live import AuditFeed
from services.signer.pades import SigningPool
from services.signer.recent import RecentBlobs
from services.signer.render import RenderPool
from services.signer.signing import Stamping
from services.signer.store import PostgresSignerStore
from shared.messaging import Outbox
from shared.orgs import OrgPortals
from shared.workers import WorkerPool

__all__ = ["SignerHttpDeps", "VerifyLimits"]


@dataclass(frozen=True)
class VerifyLimits:
    max_bytes: int = 64 * 1024 * 1024
    seconds: float = 30.0
    per_minute: float = 12.0


@dataclass(frozen=True)
class SignerHttpDeps:
    """The signer's HTTP dependencies: its database, keys, worker pools, links and page settings.

    ``links.clock`` is the services' clock: it decides whether a link has expired and what
    "now" is on a page (a signature's own time is real time)."""

    pool: Callable[[], asyncpg.Pool]
    keyring: Keyring
    signing_pool: Callable[[], SigningPool]
    render_pool: Callable[[], RenderPool]
    verify_pool: Callable[[], WorkerPool]
    outbox: Outbox
    csrf_secret: bytes
    stamping: Stamping
    links: Links
    org: str
    after_commit: Callable[[], None]
    secure_cookies: bool = False
    docs: bool = False
    verify_limits: VerifyLimits = field(default_factory=VerifyLimits)
    stuck_after: int = 5  # PARAAF_STUCK_AFTER: working days a document may wait on one step (the operator's pages)
    audit_feed: AuditFeed | None = None  # the audit log as it grows, for the operators' live stream
    # How many messages each dead-letter and holding queue keeps, read with the signer's own broker user
    # (a passive declare needs no permission on the queue); None: the incidents page cannot say.
    queue_depths: Callable[[], Awaitable[list[tuple[str, int | None]]]] | None = None
    # How many wrong code-and-secret pairs the public check page takes (the key is stamping.check_key).
    check_limits: CheckLimits = field(default_factory=CheckLimits)
    # Many cities on one signer: the organisation a page is for, by the Host it is asked on; None: always ``org``.
    portals: OrgPortals | None = None
    # The PDFs the process read or wrote last (the same object its event handlers' stores use).
    recent_blobs: RecentBlobs = field(default_factory=RecentBlobs)

    def org_at(self, request: HTTPConnection) -> str:
        """The organisation whose portal ``request`` was made on (its Host); the installation's own (``org``) for any other."""
        return self.portals.org_at(request.headers.get("host")) if self.portals is not None else self.org

    def now(self) -> datetime:
        return self.links.clock()

    @asynccontextmanager
    async def store(self) -> AsyncIterator[PostgresSignerStore]:
        """The signer's store in a transaction of its own."""
        async with self.pool().acquire() as conn, conn.transaction():
            yield PostgresSignerStore(conn, self.outbox, self.keyring, self.recent_blobs)

    @asynccontextmanager
    async def reader(self) -> AsyncIterator[PostgresSignerStore]:
        """The signer's store for reading, outside any transaction."""
        async with self.pool().acquire() as conn:
            yield PostgresSignerStore(conn, self.outbox, self.keyring, self.recent_blobs)
