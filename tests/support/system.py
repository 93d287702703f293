"""The whole of Paraaf for end-to-end tests: each service its own OS process,
against the test's own database, vhost and SMTP server, set up the way an
operator does it (``paraaf setup``, ``paraaf sources add``); plus what an
integrating system and a signer would do from outside.
"""

import asyncio
import base64
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import aio_pika
import asyncpg
import httpx

from services.admin.broker import admin_for, setup_broker
from services.admin.cli import register_source, setup_portal
from services.admin.config import AdminSettings
from services.admin.database import setup_database
from services.intake.domain import SourcePolicy
from services.router.cli import import_directory_file, load_flow_folder
from services.router.config import RouterSettings
from shared import amqp
from shared.settings import Settings
from shared.topology import TOPOLOGY
from tests.support.bus import publish_as
from tests.support.listener import Listener
from tests.support.net import free_port
from tests.support.session import MANAGEMENT_API, SESSION_PREFIX
from tests.support.smtp import SmtpServer

__all__ = ["DEMO", "SCALED", "Outcomes", "System", "demo_city", "follow_link", "submission"]

SERVICES = ("intake", "router", "signer", "notifier", "audit")
# How the pipeline and fault suites run (issue 15): every service that has competitors for its work more than once.
SCALED: Mapping[str, int] = {"router": 2, "signer": 3, "notifier": 2, "audit": 2}
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "tests" / "artifacts"




def submission(pdf: bytes, **fields: Any) -> dict[str, Any]:
    """A SubmitDocument message as an integrating system would write it."""
    return {
        "source": "notula",
        "external_ref": "BESL-2026-0042",
        "title": "Collegebesluit 42",
        "flow": "collegebesluit",
        "submitted_by": "elen.elaut",
        "confidential": False,
        "filename": "besluit-42.pdf",
        "pdf": base64.b64encode(pdf).decode(),
        "language": "nl",
        "metadata": {},
        **fields,
    }


class System:
    def __init__(
        self,
        *,
        name: str,
        database_url: str,
        amqp_url: str,
        smtp: SmtpServer,
        secrets_dir: str,
        extra_env: Mapping[str, str] = {},
        scale: Mapping[str, int] = {},
    ) -> None:
        """``scale``: processes per service (default one), as `paraaf run all --scale` starts them; replica ``i`` > 1
        of service ``s`` is named ``s-i`` in ``processes`` and its log is ``s-i.log``."""
        self.scale = {service: scale.get(service, 1) for service in SERVICES}
        self.ports = {service: free_port() for service in SERVICES}
        self.public_url = f"http://127.0.0.1:{self.ports['signer']}"
        self.amqp_url = amqp_url  # the administrator's: tests observe with it, services never use it
        self.source_urls: dict[str, str] = {}
        self._keys: dict[str, str] = {}
        self.logs = ARTIFACTS / name
        self.logs.mkdir(parents=True, exist_ok=True)
        self.env = {
            **os.environ,
            "PARAAF_DATABASE_URL": database_url,
            "PARAAF_AMQP_URL": amqp_url,
            "PARAAF_SMTP_HOST": smtp.host,
            "PARAAF_SMTP_PORT": str(smtp.port),
            "PARAAF_PUBLIC_URL": self.public_url,
            "PARAAF_DATA_DIR": str(self.logs / "data"),
            "PARAAF_SECRETS_DIR": secrets_dir,
            "PARAAF_BROKER_USER_PREFIX": SESSION_PREFIX,
            "PARAAF_DB_ROLE_PREFIX": SESSION_PREFIX,
            "PARAAF_SIGNER_INTERNAL_URL": self.public_url,
            "PARAAF_KEY_SECRET": secrets.token_urlsafe(24),
            **{f"PARAAF_{service.upper()}_PORT": str(port) for service, port in self.ports.items()},
            **extra_env,
        }
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self._starts: dict[str, int] = {}

    def url(self, service: str, path: str = "") -> str:
        return f"http://127.0.0.1:{self.ports[service]}{path}"

    def replicas(self, service: str) -> list[str]:
        """The process names of ``service``: ``signer``, ``signer-2``, ``signer-3`` when it runs as three."""
        return [service] + [f"{service}-{i}" for i in range(2, self.scale[service] + 1)]

    @property
    def process_names(self) -> list[str]:
        return [name for service in SERVICES for name in self.replicas(service)]

    def start_service(self, name: str) -> None:
        """Start ``name`` (a service, or one replica of it such as ``signer-2``) with the environment
        `paraaf run all --scale` gives it (services/supervisor.py)."""
        service, _, number = name.partition("-")
        env = dict(self.env)
        if self.scale[service] > 1:
            env.update(PARAAF_HTTP_REUSE_PORT="true", PARAAF_REPLICA=number or "1")
            # Replicas share the work, so each gets a smaller pool: a scaled city holds about as many PostgreSQL
            # connections as a single one, and cities side by side stay within one server's max_connections.
            env.setdefault("PARAAF_DB_POOL_SIZE", str(max(2, 5 // self.scale[service])))
        log = self.logs / f"{name}.log"
        self._starts[name] = _started_lines(log)
        self.processes[name] = subprocess.Popen(
            [sys.executable, "-m", f"services.{service}"], env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT, cwd=ROOT
        )

    async def start(self, timeout: float = 90.0) -> None:
        self.started_at = time.monotonic()  # the services' clocks (PARAAF_CLOCK_START) begin a moment after this
        for name in self.process_names:
            self.start_service(name)
        await self.wait_healthy(self.process_names, timeout)

    async def wait_healthy(self, services: tuple[str, ...] | list[str], timeout: float = 90.0) -> None:
        """Each named process runs and its service answers /health; a replica of a scaled service (its port shared,
        so /health may be another replica's answer) has also logged that it started, since it was last started."""
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient() as client:
            for name in services:
                service = name.partition("-")[0]
                while True:
                    process = self.processes[name]
                    if process.poll() is not None:
                        raise AssertionError(f"{name} exited with {process.returncode}; see {self.logs}/{name}.log")
                    try:
                        answered = (await client.get(self.url(service, "/health"))).status_code == 200
                    except httpx.TransportError:
                        answered = False
                    if answered and (self.scale[service] == 1 or _started_lines(self.logs / f"{name}.log") > self._starts[name]):
                        break
                    if time.monotonic() > deadline:
                        raise AssertionError(f"{name} not healthy within {timeout}s; see {self.logs}/{name}.log")
                    await asyncio.sleep(0.2)

    def stop_service(self, service: str, sig: int = signal.SIGTERM) -> int:
        process = self.processes.pop(service)
        process.send_signal(sig)
        try:
            return process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            return process.wait()

    def stop(self) -> dict[str, int]:
        """SIGTERM to every service at once, as systemd or `paraaf run all` stops them; their exit codes."""
        stopping = {service: self.processes.pop(service) for service in list(self.processes)}
        for process in stopping.values():
            process.send_signal(signal.SIGTERM)
        codes = {}
        for service, process in stopping.items():
            try:
                codes[service] = process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                codes[service] = process.wait()
        return codes

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run ``paraaf ARGS`` as an operator would, against this system."""
        result = subprocess.run(
            [sys.executable, "-m", "services", *args], env=self.env, capture_output=True, text=True, cwd=ROOT
        )
        if check and result.returncode != 0:
            raise AssertionError(f"paraaf {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result

    @property
    def settings(self) -> Settings:
        """What an operator's shell holds: the administrator's URLs and where the services' credentials are."""
        return Settings(
            database_url=self.env["PARAAF_DATABASE_URL"],
            amqp_url=self.amqp_url,
            secrets_dir=self.env["PARAAF_SECRETS_DIR"],
            broker_user_prefix=SESSION_PREFIX,
            db_role_prefix=SESSION_PREFIX,
        )

    async def publish_as(self, service: str, *messages: Any) -> None:
        """What ``service``'s outbox relay would publish (tests that play one service)."""
        await publish_as(self.settings, service, *messages)

    def operator_headers(self, scopes: str = "operate") -> dict[str, str]:
        """An API key made with `paraaf keys create`, as an Authorization header."""
        name = f"tests-{scopes.replace(',', '-')}"
        if name not in self._keys:
            self._keys[name] = self.cli("keys", "create", "--name", name, "--scopes", scopes).stdout.strip()
        return {"Authorization": f"Bearer {self._keys[name]}"}

    def setup(self) -> None:
        """`paraaf setup`, as an operator runs it on a fresh install."""
        self.cli("setup")

    @property
    def admin_settings(self) -> AdminSettings:
        return AdminSettings(**self.settings.model_dump(), broker_admin_api=MANAGEMENT_API)

    async def set_up(self) -> None:
        """What `paraaf setup` does, done in this process (the CLI itself is tested on its own)."""
        await setup_database(self.admin_settings)
        await setup_broker(self.admin_settings, TOPOLOGY, admin_for(self.admin_settings))
        await setup_portal(self.admin_settings)

    async def register(self, policy: SourcePolicy) -> str:
        """What `paraaf sources add` does, in this process; returns the source's URL."""
        _, url = await register_source(self.admin_settings, policy, new_password=True)
        assert url is not None
        self.source_urls[policy.source] = url
        return url

    async def load_demo_city(self) -> None:
        """What `paraaf directory import` and `paraaf flows load` do with the demo city, in this process."""
        router = RouterSettings(**self.settings.model_dump())
        await import_directory_file(router, DEMO / "city.xlsx")
        await load_flow_folder(router, DEMO / "flows")

    def add_source(self, source: str, *options: str) -> str:
        """`paraaf sources add`; returns the source's own AMQP URL, as the command prints it."""
        printed = self.cli("sources", "add", source, *options).stdout.strip().splitlines()
        self.source_urls[source] = printed[-1]
        return printed[-1]

    async def publish(
        self,
        body: dict[str, Any] | bytes,
        routing_key: str = "submit.notula",
        *,
        source: str = "notula",
        user_id: str | None = "own",
        content_type: str = "application/json",
    ) -> None:
        """Publish on esign.intake as the integrating system ``source`` does: with its own user, persistent, confirmed."""
        payload = body if isinstance(body, bytes) else json.dumps(body).encode()
        await self._publish([payload], routing_key, source, user_id, content_type)

    async def publish_many(self, bodies: list[dict[str, Any]], *, source: str = "notula") -> None:
        """Publish several submissions as ``source`` does, over one connection (each persistent and confirmed)."""
        await self._publish([json.dumps(body).encode() for body in bodies], f"submit.{source}", source, "own", "application/json")

    async def _publish(self, payloads: list[bytes], routing_key: str, source: str, user_id: str | None, content_type: str) -> None:
        url = self.source_urls[source]
        own = unquote(urlsplit(url).username or "")  # also in a URL listing several nodes
        connection = await amqp.connect(url)
        async with connection:
            channel = await connection.channel(publisher_confirms=True)
            exchange = await channel.get_exchange("esign.intake", ensure=False)
            for payload in payloads:
                message = aio_pika.Message(
                    payload, content_type=content_type, delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                    user_id=own if user_id == "own" else user_id,
                )
                await exchange.publish(message, routing_key=routing_key)

    async def audit_events(self, routing_key: str, timeout: float = 30.0) -> list[dict[str, Any]]:
        """The events of one kind in the audit log (waiting until there is at least one)."""
        deadline = time.monotonic() + timeout
        conn = await asyncpg.connect(self.env["PARAAF_DATABASE_URL"])
        try:
            while True:
                rows = await conn.fetch("SELECT payload FROM audit.log WHERE routing_key = $1 ORDER BY seq", routing_key)
                if rows or time.monotonic() > deadline:
                    return [json.loads(r["payload"])["event"] for r in rows]
                await asyncio.sleep(0.2)
        finally:
            await conn.close()

    async def root_certificate(self) -> bytes:
        async with httpx.AsyncClient() as client:
            response = await client.get(self.url("signer", "/ca.pem"))
            response.raise_for_status()
            return response.content


DEMO = ROOT / "deploy" / "demo"


def _started_lines(log: Path) -> int:
    """How often the process logging to ``log`` said it started (Service logs "service started" once it serves)."""
    try:
        return log.read_text(errors="replace").count('"event": "service started"')
    except FileNotFoundError:
        return 0


@asynccontextmanager
async def demo_city(
    name: str,
    *,
    database_url: str,
    amqp_url: str,
    smtp: SmtpServer,
    secrets_dir: str,
    scale: Mapping[str, int] = {},
    **extra_env: str,
) -> AsyncIterator[System]:
    """The demo city (deploy/demo: city.xlsx and its flows) with every service its own process (``scale``: several
    of some), set up as `paraaf setup` does on a fresh install, with source `notula` registered (any submitter,
    ad-hoc steps); stopped cleanly after."""
    system = System(
        name=name, database_url=database_url, amqp_url=amqp_url, smtp=smtp, secrets_dir=secrets_dir, extra_env=extra_env,
        scale=scale,
    )
    await system.set_up()
    await system.register(SourcePolicy("notula", "default", ad_hoc_steps=True))
    await system.load_demo_city()
    try:
        await system.start()  # inside: when one service fails to start, the others are stopped too, not left running
        yield system
    finally:
        codes = system.stop()
    assert all(code == 0 for code in codes.values()), f"a service did not stop cleanly: {codes}"


class Outcomes(Listener):
    """A source system's view: a queue bound to esign.outcomes."""

    def __init__(self, amqp_url: str, binding: str = "#") -> None:
        super().__init__(amqp_url, "esign.outcomes", [binding])

    async def wait(  # type: ignore[override]
        self, routing_key: str, external_ref: str | None = None, *, code: str | None = None, timeout: float = 60.0
    ) -> dict[str, Any]:
        """The first outcome with this routing key (and external_ref, and code, when given)."""
        fields = {k: v for k, v in (("external_ref", external_ref), ("code", code)) if v is not None}
        return (await super().wait(routing_key, timeout=timeout, **fields))[0]


_CSRF = re.compile(r'name="csrf" value="([0-9a-f]+)"')


async def follow_link(
    client: httpx.AsyncClient, link: str, *, decline_reason: str | None = None
) -> httpx.Response:
    """What a signer does with the emailed link: open the page, then Sign (or Decline with a reason)."""
    page = await client.get(link)
    if page.status_code != 200:
        return page
    csrf = _CSRF.search(page.text)
    assert csrf is not None, f"no CSRF token on the signing page:\n{page.text}"
    if decline_reason is not None:
        return await client.post(f"{link}/decline", data={"csrf": csrf.group(1), "reason": decline_reason})
    return await client.post(f"{link}/sign", data={"csrf": csrf.group(1)})
