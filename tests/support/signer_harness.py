"""The signer service's handlers and HTTP app in the test's process, on a real
PostgreSQL database and real signing/rendering worker processes, without a
broker: events go straight to the handlers (in a transaction, as the consumer
edge runs them) and what the signer would publish is read from its outbox.
The harness plays intake (a document's first version), the router's directory
(the people it asks) and the notifier (asking the link API for a mail's link).
"""

import json
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import httpx

from services.signer import handlers
from services.signer.domain import Links
from services.signer.http import PortalConfig, SignerHttpDeps, build_http
from services.signer.keys import Keyring
from services.signer.pades import SigningPool, find_placeholders
from services.signer.recent import RecentBlobs
from services.signer.render import RenderPool
from services.signer.signing import Stamping
from services.signer.store import PostgresSignerStore
from shared import apikeys, blobs
from shared.blobs import get_blob, put_blob, register_version
from shared.db import connect_pool, migrate
from shared.events import PersonRef, SignatureRequested
from shared.messaging import Outbox
from shared.workers import WorkerPool

__all__ = ["KEY_SECRET", "SignerHarness", "csrf_of"]

SERVICES = Path(__file__).resolve().parents[2] / "services"
MIGRATIONS = SERVICES / "signer" / "migrations"
SUBMITTER = PersonRef(id="elen.elaut", name="Elen Elaut", email="elen.elaut@demo.paraaf.be")
KEY_SECRET = "test-key-secret-long-enough"  # PARAAF_KEY_SECRET, for a `paraaf` command on the harness's database
_CSRF = re.compile(r'name="csrf" value="([0-9a-f]+)"')


def csrf_of(page: httpx.Response) -> str:
    match = _CSRF.search(page.text)
    assert match is not None, f"no form on the page:\n{page.text}"
    return match.group(1)


class SignerHarness:
    def __init__(
        self, database_url: str, signing_pool: SigningPool, render_pool: RenderPool, *, portal: PortalConfig | None = None,
        public_url: str | None = None, **http_options: Any,
    ) -> None:
        self.database_url = database_url
        self.portal = portal
        self.http_options = http_options
        self.signing_pool = signing_pool
        self.render_pool = render_pool
        self.outbox = Outbox("signer")
        self.recent_blobs = RecentBlobs()  # shared by the handlers and the app, as in the service
        self.keyring = Keyring(KEY_SECRET.encode(), "Stad Testegem", public_url)  # public_url: certificates name its CRL
        self.verify_pool = WorkerPool(1)
        self.pool: asyncpg.Pool
        self.client: httpx.AsyncClient
        self.links_key = ""

    async def __aenter__(self) -> "SignerHarness":
        self.pool = await connect_pool(self.database_url, max_size=4)
        await migrate(self.pool, "blobs", [blobs.MIGRATIONS], messaging=False)
        await migrate(self.pool, "access", [apikeys.MIGRATIONS], messaging=False)
        await migrate(self.pool, "router", [SERVICES / "router" / "migrations"])
        await migrate(self.pool, "intake", [SERVICES / "intake" / "migrations"])
        await migrate(self.pool, "signer", [MIGRATIONS])
        async with self.pool.acquire() as conn:
            await self.keyring.unlock(conn)
            _, self.links_key = await apikeys.create_key(conn, org="*", name="test harness", scopes=["links"])
        app = build_http(
            SignerHttpDeps(
                pool=lambda: self.pool,
                keyring=self.keyring,
                signing_pool=lambda: self.signing_pool,
                render_pool=lambda: self.render_pool,
                verify_pool=lambda: self.verify_pool,
                outbox=self.outbox,
                recent_blobs=self.recent_blobs,
                csrf_secret=b"test-csrf-secret",
                **{
                    "stamping": Stamping(),
                    "links": self.links(),
                    "org": "default",
                    "after_commit": lambda: None,
                    **self.http_options,
                },
            ),
            self.portal,
        )
        self.app = app  # to serve it on a real port too
        self.client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://signer.test")
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.client.aclose()
        await self.pool.close()
        self.verify_pool.close()

    def links(self, *, minted_at: datetime | None = None, ttl: timedelta = timedelta(days=21)) -> Links:
        return Links("http://signer.test", ttl, lambda: minted_at or datetime.now(UTC))

    async def in_transaction(self, work: Callable[[asyncpg.Connection], Awaitable[Any]]) -> Any:
        async with self.pool.acquire() as conn, conn.transaction():
            return await work(conn)

    async def in_store(self, work: Callable[[PostgresSignerStore], Awaitable[Any]]) -> Any:
        """``work`` on the signer's store, in a transaction, as the consumer edge runs a handler."""
        return await self.in_transaction(lambda conn: work(PostgresSignerStore(conn, self.outbox, self.keyring, self.recent_blobs)))

    async def new_document(self, pdf: bytes) -> tuple[UUID, str]:
        """A PDF intake accepted: stored, and registered as the first version of a new document."""
        document_id = uuid4()

        async def accept(conn: asyncpg.Connection) -> str:
            digest = await put_blob(conn, pdf)
            await register_version(conn, document_id, 0, "default", digest)
            return digest

        return document_id, await self.in_transaction(accept)

    async def in_directory(self, person: PersonRef, *, holds: str = "") -> None:
        """The person as the router's directory has them (and holding the role titled ``holds``)."""

        async def add(conn: asyncpg.Connection) -> None:
            await conn.execute(
                "INSERT INTO router.people (org, id, name, email) VALUES ('default', $1, $2, $3) ON CONFLICT DO NOTHING",
                person.id,
                person.name,
                person.email,
            )
            if holds:
                await conn.execute(
                    "INSERT INTO router.roles (org, key, title, holders) VALUES ('default', $1, $2, $3)"
                    " ON CONFLICT (org, key) DO UPDATE SET holders = array_append(router.roles.holders, $4)",
                    holds.replace(" ", "-"),
                    holds,
                    [person.id],
                    person.id,
                )

        await self.in_transaction(add)

    async def link_for(self, request_id: UUID, links: Links | None = None) -> str:
        """What the notifier does when it sends the mail: ask the signer for the link (returns its path)."""
        if links is not None:
            made = await self.in_store(lambda store: handlers.mint_signing_link(store, request_id, uuid4(), links=links))
            return httpx.URL(made.url).path
        answer = await self.client.post(
            "/internal/links",
            json={"kind": "signing", "request_id": str(request_id), "mail_id": str(uuid4())},
            headers={"Authorization": f"Bearer {self.links_key}"},
        )
        assert answer.status_code == 201, answer.text
        return httpx.URL(answer.json()["url"]).path

    async def request(
        self,
        document: tuple[UUID, str],
        signer: PersonRef,
        *,
        step: int = 1,
        step_count: int = 1,
        action: str = "sign",
        on_behalf_of: PersonRef | None = None,
        signature_count: int | None = None,
        links: Links | None = None,
    ) -> tuple[UUID, str]:
        """A signature.requested for ``signer``, handled; returns (request id, the path of the link mailed)."""
        document_id, digest = document
        represented = on_behalf_of or signer
        await self.in_directory(represented, holds=signer.title)
        await self.in_directory(signer)
        event = SignatureRequested(
            correlation_id=document_id,
            request_id=uuid4(),
            step=step,
            step_count=step_count,
            action=action,
            signer=signer,
            on_behalf_of=on_behalf_of,
            title="Collegebesluit 42",
            filename="besluit-42.pdf",
            submitted_by=SUBMITTER,
            pdf_sha256=digest,
            signature_count=signature_count,
        )
        await self.in_store(
            lambda store: handlers.on_signature_requested(
                event,
                store,
                links=links or self.links(),
                find_placeholders=lambda pdf: self.signing_pool.run(find_placeholders, pdf),
            )
        )
        (command,) = [c for c in await self.published("notify.signing-link") if c["request_id"] == str(event.request_id)]
        assert "link" not in command, "no link travels on the bus"
        return event.request_id, await self.link_for(event.request_id, links)

    async def published(self, routing_key: str) -> list[dict[str, Any]]:
        rows = await self.pool.fetch("SELECT body FROM signer.outbox WHERE routing_key = $1 ORDER BY id", routing_key)
        return [json.loads(r["body"]) for r in rows]

    async def document(self, document_id: UUID) -> tuple[int, bytes]:
        """(signatures Paraaf put in it, the current PDF)."""
        row = await self.pool.fetchrow("SELECT revision, pdf_sha256 FROM signer.documents WHERE document_id = $1", document_id)
        return row["revision"], await get_blob(self.pool, row["pdf_sha256"])

    async def sign(self, link: str) -> httpx.Response:
        """Open the page and press Sign, as a signer does."""
        page = await self.client.get(link)
        if page.status_code != 200:
            return page
        return await self.client.post(f"{link}/sign", data={"csrf": csrf_of(page)})

    async def decline(self, link: str, reason: str) -> httpx.Response:
        page = await self.client.get(link)
        if page.status_code != 200:
            return page
        return await self.client.post(f"{link}/decline", data={"csrf": csrf_of(page), "reason": reason})
