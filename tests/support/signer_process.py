"""The signer service as its own process on a fresh database and vhost, set up
as `paraaf setup` does, fed ``signature.requested`` events as the router
publishes them and signed as a signer's browser does: POST ``/s/<token>/sign``.
For bench/signer.py and for tests of one signer setting end to end."""

import asyncio
import json
import re
import tempfile
import time
import uuid
from types import SimpleNamespace

import aio_pika
import asyncpg
import httpx

from shared.blobs import get_blob, put_blob, register_version
from shared.events import PersonRef, SignatureRequested
from tests.support.bus import publish_as

__all__ = ["SIGNER", "SUBMITTER", "SignerUnderTest"]

SIGNER = PersonRef(id="ann.aerts", name="Ann Aérts", email="ann.aerts@demo.paraaf.be", title="algemeen directeur")
SUBMITTER = PersonRef(id="elen.elaut", name="Elen Elaut", email="elen.elaut@demo.paraaf.be")
_CSRF = re.compile(r'name="csrf" value="([0-9a-f]+)"')


class SignerUnderTest:
    """The signer service as its own process on a fresh database and vhost."""

    def __init__(
        self, admin_database_url: str, admin_amqp_url: str, *, remove_accounts: bool = False, **extra_env: str
    ) -> None:
        self.name = f"paraaf_signer_{uuid.uuid4().hex[:10]}"
        self.links: asyncio.Queue[str] = asyncio.Queue()
        self._admin_database_url, self._admin_amqp_url = admin_database_url, admin_amqp_url
        self._remove_accounts = remove_accounts  # a bench's own process: its users and roles go with it
        self._extra_env = extra_env

    async def __aenter__(self) -> "SignerUnderTest":
        from tests.conftest import VhostAdmin
        from tests.support.system import System

        self._secrets = tempfile.TemporaryDirectory(prefix="paraaf-bench-secrets-")
        admin = await asyncpg.connect(self._admin_database_url)
        await admin.execute(f'CREATE DATABASE "{self.name}"')
        await admin.close()
        self.database_url = self._admin_database_url.rsplit("/", 1)[0] + "/" + self.name
        self._vhosts = VhostAdmin(self._admin_amqp_url)
        self.amqp_url = await asyncio.to_thread(self._vhosts.create, self.name)
        self.system = System(
            name="bench-signer", database_url=self.database_url, amqp_url=self.amqp_url,
            smtp=SimpleNamespace(host="127.0.0.1", port=1), secrets_dir=self._secrets.name, extra_env=self._extra_env,
        )
        await self.system.set_up()
        self.system.start_service("signer")
        await self.system.wait_healthy(["signer"])
        self._connection = await aio_pika.connect(self.amqp_url)
        channel = await self._connection.channel(publisher_confirms=True)
        commands = await channel.get_exchange("esign.commands", ensure=True)
        queue = await channel.declare_queue(exclusive=True)
        await queue.bind(commands, "notify.signing-link")
        await queue.consume(self._on_link, no_ack=True)
        self._db = await asyncpg.connect(self.database_url)
        self.http = httpx.AsyncClient(base_url=self.system.url("signer"), timeout=60)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.http.aclose()
        await self._db.close()
        await self._connection.close()
        self.system.stop()
        admin = await asyncpg.connect(self._admin_database_url)
        await admin.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        await admin.close()
        await asyncio.to_thread(self._vhosts.delete, self.name)
        if self._remove_accounts:
            from tests.conftest import _remove_session_accounts

            await asyncio.to_thread(_remove_session_accounts, SimpleNamespace(database_url=self._admin_database_url))
        self._secrets.cleanup()

    async def _on_link(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        await self.links.put(httpx.URL(json.loads(message.body)["link"]).path)

    async def requests(self, pdf: bytes, count: int) -> list[str]:
        """``count`` open requests, one document each: their link paths."""
        digest = await put_blob(self._db, pdf)
        for _ in range(count):
            document_id = uuid.uuid4()
            await register_version(self._db, document_id, 0, "default", digest)  # as intake would have
            event = SignatureRequested(
                correlation_id=document_id, request_id=uuid.uuid4(), step=1, step_count=1, signer=SIGNER,
                title="Benchmark", filename="bench.pdf", submitted_by=SUBMITTER, pdf_sha256=digest,
            )
            await publish_as(self.system.admin_settings, "router", event)  # as the router would: its own broker user
        return [await asyncio.wait_for(self.links.get(), 60) for _ in range(count)]

    async def signed_pdf(self) -> bytes:
        """The latest version of the last document signed."""
        digest = await self._db.fetchval("SELECT sha256 FROM blobs.versions WHERE revision > 0 ORDER BY created_at DESC LIMIT 1")
        return await get_blob(self._db, digest)

    async def open_pages(self, links: list[str]) -> list[tuple[httpx.AsyncClient, str, str]]:
        """Each link opened in its own browser (cookie jar), as a signer would before pressing Sign."""
        opened = []
        for link in links:
            browser = httpx.AsyncClient(base_url=self.system.url("signer"), timeout=60)
            page = await browser.get(link)
            page.raise_for_status()
            opened.append((browser, link, _CSRF.search(page.text).group(1)))
        return opened

    async def sign_all(self, opened: list[tuple[httpx.AsyncClient, str, str]], in_flight: int) -> tuple[list[float], float]:
        """(seconds per signature, wall time) pressing Sign on every page, ``in_flight`` at a time."""
        times: list[float] = []
        pending = list(opened)

        async def press() -> None:
            while pending:
                browser, link, csrf = pending.pop()
                started = time.perf_counter()
                response = await browser.post(f"{link}/sign", data={"csrf": csrf})
                times.append(time.perf_counter() - started)
                if response.status_code != 200:
                    raise RuntimeError(f"signing failed: {response.status_code} {response.text[:200]}")
                await browser.aclose()

        started = time.perf_counter()
        await asyncio.gather(*(press() for _ in range(in_flight)))
        return times, time.perf_counter() - started
