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

from shared import amqp
from shared.blobs import get_blob, put_blob, register_version
from shared.credentials import read_identity
from shared.events import PersonRef, SignatureRequested
from tests.support.bus import publish_as

__all__ = ["SIGNER", "SUBMITTER", "SignerUnderTest"]

SIGNER = PersonRef(id="ann.aerts", name="Ann Aérts", email="ann.aerts@demo.paraaf.be", title="algemeen directeur")
SUBMITTER = PersonRef(id="elen.elaut", name="Elen Elaut", email="elen.elaut@demo.paraaf.be")
_CSRF = re.compile(r'name="csrf" value="([0-9a-f]+)"')


class SignerUnderTest:
    """The signer service as its own process on a fresh database and vhost."""

    def __init__(
        self, admin_database_url: str, admin_amqp_url: str, *, logs: str = "bench-signer", remove_accounts: bool = False,
        **extra_env: str,
    ) -> None:
        self._logs = logs  # tests/artifacts/<logs>/signer.log
        self.name = f"paraaf_signer_{uuid.uuid4().hex[:10]}"
        self.mailed: asyncio.Queue[str] = asyncio.Queue()  # request ids of the links the notifier is asked to mail
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
            name=self._logs, database_url=self.database_url, amqp_url=self.amqp_url,
            smtp=SimpleNamespace(host="127.0.0.1", port=1), secrets_dir=self._secrets.name, extra_env=self._extra_env,
        )
        await self.system.set_up()
        self.system.start_service("signer")
        await self.system.wait_healthy(["signer"])
        self._connection = await amqp.connect(self.amqp_url)
        channel = await self._connection.channel(publisher_confirms=True)
        commands = await channel.get_exchange("esign.commands", ensure=True)
        queue = await channel.declare_queue(exclusive=True)
        await queue.bind(commands, "notify.signing-link")
        await queue.consume(self._on_link, no_ack=True)
        self.db = await asyncpg.connect(self.database_url)
        await self._in_directory(SIGNER)
        self.http = httpx.AsyncClient(base_url=self.system.url("signer"), timeout=60)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.http.aclose()
        await self.db.close()
        await self._connection.close()
        self.system.stop()
        admin = await asyncpg.connect(self._admin_database_url)
        await admin.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        await admin.close()
        await asyncio.to_thread(self._vhosts.delete, self.name)
        if self._remove_accounts:
            from tests.conftest import _remove_session_accounts

            await asyncio.to_thread(
                _remove_session_accounts, SimpleNamespace(database_url=self._admin_database_url, templates={})
            )
        self._secrets.cleanup()

    async def _in_directory(self, person: PersonRef) -> None:
        """The signer as the router's directory has them, holding the role of their function."""
        await self.db.execute(
            "INSERT INTO router.people (org, id, name, email) VALUES ('default', $1, $2, $3)", person.id, person.name, person.email
        )
        await self.db.execute(
            "INSERT INTO router.roles (org, key, title, holders) VALUES ('default', $1, $2, $3)",
            person.title.replace(" ", "-"), person.title, [person.id],
        )

    async def _on_link(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        await self.mailed.put(json.loads(message.body)["request_id"])

    async def _link(self) -> str:
        """What the notifier does when it sends the mail: ask the signer's link API for the link (returns its path)."""
        request_id = await asyncio.wait_for(self.mailed.get(), 60)
        key = read_identity(self.system.admin_settings, "notifier", needs=("signer_key",)).signer_key
        answer = await self.http.post(
            "/internal/links", json={"kind": "signing", "request_id": request_id, "mail_id": str(uuid.uuid4())},
            headers={"Authorization": f"Bearer {key}"},
        )
        answer.raise_for_status()
        return httpx.URL(answer.json()["url"]).path

    async def requests(self, pdf: bytes, count: int) -> list[str]:
        """``count`` open requests, one document each: their link paths."""
        digest = await put_blob(self.db, pdf)
        for _ in range(count):
            document_id = uuid.uuid4()
            await register_version(self.db, document_id, 0, "default", digest)  # as intake would have
            event = SignatureRequested(
                correlation_id=document_id, request_id=uuid.uuid4(), step=1, step_count=1, signer=SIGNER,
                title="Benchmark", filename="bench.pdf", submitted_by=SUBMITTER, pdf_sha256=digest,
            )
            await publish_as(self.system.admin_settings, "router", event)  # as the router would: its own broker user
        return [await self._link() for _ in range(count)]

    async def signed_pdf(self) -> bytes:
        """The latest version of the last document signed."""
        digest = await self.db.fetchval("SELECT sha256 FROM blobs.versions WHERE revision > 0 ORDER BY created_at DESC LIMIT 1")
        return await get_blob(self.db, digest)

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
