"""Infrastructure for tests that talk to real RabbitMQ, PostgreSQL and SMTP.

Broker and database URLs come from ``PARAAF_TEST_AMQP_URL`` and
``PARAAF_TEST_DATABASE_URL`` (default: the local servers). When neither is
given, no local server answers and a Docker engine does, testcontainers
starts them. Every test that needs them gets a fresh database and a fresh
RabbitMQ vhost, so runs and tests never see each other's messages.

``provision`` does what ``paraaf setup`` does for that database and vhost:
roles, schemas, migrations, broker users, permissions and topology. Users
and roles are global to their server, so a session names its own
(``paraaf_t<pid>``), reuses them across its tests and removes them at its end.
"""

import asyncio
import contextlib
import os
import shutil
import socket
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote, urlsplit, urlunsplit

import asyncpg
import httpx
import pytest
from hypothesis import settings as hypothesis_settings

from services.admin.broker import BrokerAdminError, ManagementApi, setup_broker
from services.admin.config import AdminSettings
from services.admin.database import SCHEMAS, SERVICES, setup_database
from shared.topology import TOPOLOGY, Topology
from tests.support import distribution, reports
from tests.support.janitor import Janitor
from tests.support.oidc import OidcProvider, run_oidc_provider
from tests.support.session import MANAGEMENT_API, MANAGEMENT_BASE, SESSION_PREFIX
from tests.support.smtp import SmtpServer
from tests.support.template import SetUpTemplate

if TYPE_CHECKING:
    from tests.support.softhsm import SoftHsm
    from tests.support.system import System

LOCAL_AMQP = "amqp://guest:guest@127.0.0.1:5672/"
# Property tests: a quick pass on every run; PARAAF_HYPOTHESIS_PROFILE=thorough for a long one (make test-thorough).
hypothesis_settings.register_profile("ci", deadline=None, max_examples=150)
hypothesis_settings.register_profile("thorough", deadline=None, max_examples=5000)
hypothesis_settings.load_profile(os.environ.get("PARAAF_HYPOTHESIS_PROFILE", "ci"))
LOCAL_DATABASE = "postgresql://postgres@127.0.0.1:5432/postgres"


# ---- how the suite runs: xdist groups, the serial pass, the reports printed at the end (make test)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("paraaf", "Paraaf's reports at the end of a run")
    group.addoption(
        "--reports-file",
        metavar="PATH",
        help="a run in several passes (make test): add this pass's reports to PATH and print them with the earlier passes'",
    )
    group.addoption(
        "--hold-reports", action="store_true", help="only add this pass's reports to --reports-file; a later pass prints them"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    distribution.heaviest_first(config, items)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: object) -> None:
    distribution.share_groups(node)


@pytest.hookimpl(tryfirst=True)  # before xdist's worker reports its collection to the controller
def pytest_collection_finish(session: pytest.Session) -> None:
    distribution.write_groups(session)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object:
    return distribution.scheduler(config, log) if config.getvalue("dist") == "loadgroup" else None


def pytest_unconfigure(config: pytest.Config) -> None:
    if hasattr(config, "_paraaf_groups"):
        shutil.rmtree(config._paraaf_groups.parent, ignore_errors=True)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item) -> None:
    reports.now_running(item.session.items.index(item))


def pytest_sessionfinish(session: pytest.Session) -> None:
    if hasattr(session.config, "workerinput"):  # an xdist worker: the controller prints
        session.config.workeroutput["paraaf_reports"] = reports.gathered()  # type: ignore[attr-defined]


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: object, error: object) -> None:
    reports.merge(getattr(node, "workeroutput", {}).get("paraaf_reports", {}))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    if hasattr(config, "workerinput"):
        return
    path = config.getoption("reports_file")
    sections = reports.combined(reports.load(Path(path)) if path else {}, reports.gathered())
    if path:
        reports.save(Path(path), sections)
    if config.getoption("hold_reports"):
        return
    for section, lines in reports.printable(sections):
        terminalreporter.section(section)
        for line in lines:
            terminalreporter.write_line(line)


def _answers(url: str, default_port: int) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or default_port), timeout=1):
            return True
    except OSError:
        return False


def _docker_answers() -> bool:
    try:
        import docker

        docker.from_env().ping()
        return True
    except Exception:  # noqa: BLE001 - any failure means "no engine here"
        return False


@dataclass
class Infra:
    amqp_url: str  # the broker's root vhost
    database_url: str  # a database to run CREATE DATABASE from
    vhost_admin: "VhostAdmin"
    janitor: Janitor | None = None  # the test session's: drops and deletes behind the tests (else done in place)
    templates: dict[str, SetUpTemplate] = field(default_factory=dict)  # per secrets directory (its roles' passwords)

    def set_up_template(self, secrets_dir: str) -> SetUpTemplate:
        """The session's database that `paraaf setup` ran on (tests/support/template.py), made on first use."""
        if secrets_dir not in self.templates:
            settings_for = lambda url: admin_settings(url, self.amqp_url, secrets_dir)  # noqa: E731
            self.templates[secrets_dir] = SetUpTemplate(self.database_url, fresh_name("paraaf_template"), settings_for)
        return self.templates[secrets_dir]

    def clean_up(self, what: str, job: Callable[[], None]) -> None:
        if self.janitor is None:
            job()
        else:
            self.janitor.later(what, job)


class VhostAdmin:
    """Creates and deletes vhosts through the management API (``MANAGEMENT_API``), as every test's broker set-up is
    made (tests/support/session.py); rabbitmqctl only inside a testcontainers broker, whose API port is not the
    local one. rabbitmqctl boots an Erlang node per call: the three calls of a vhost's life took ~3 s of a test's
    setup and teardown, the API ~0.1 s, and the suite makes about a hundred vhosts."""

    def __init__(self, amqp_url: str, container: object | None = None) -> None:
        self._url = urlsplit(amqp_url)
        self._user = self._url.username or "guest"
        self._container = container

    def _ctl(self, *args: str) -> None:
        self._container.exec(["rabbitmqctl", *args])  # type: ignore[attr-defined]

    def create(self, name: str) -> str:
        if self._container is not None:
            self._ctl("add_vhost", name)
            self._ctl("set_permissions", "-p", name, self._user, ".*", ".*", ".*")
        else:
            _put(f"{MANAGEMENT_BASE}/vhosts/{quote(name, safe='')}", _MANAGEMENT_AUTH)
            _put(
                f"{MANAGEMENT_BASE}/permissions/{quote(name, safe='')}/{quote(self._user, safe='')}",
                _MANAGEMENT_AUTH,
                {"configure": ".*", "write": ".*", "read": ".*"},
            )
        return urlunsplit(self._url._replace(path="/" + quote(name, safe="")))

    def delete(self, name: str) -> None:
        if self._container is not None:
            self._ctl("delete_vhost", name)
        else:
            _delete(f"{MANAGEMENT_BASE}/vhosts/{quote(name, safe='')}", _MANAGEMENT_AUTH)


_MANAGEMENT_AUTH = (urlsplit(MANAGEMENT_API).username or "guest", urlsplit(MANAGEMENT_API).password or "guest")


def _put(url: str, auth: tuple[str, str], body: dict[str, str] | None = None) -> None:
    """A PUT to the management API, which a busy broker may answer only after tens of seconds, or drop (its own
    request timeout): a PUT makes the same vhost or grant again, so it is tried again."""
    for attempt in range(3):
        try:
            httpx.put(url, auth=auth, json=body, timeout=120).raise_for_status()
            return
        except httpx.TransportError:
            if attempt == 2:
                raise


def _delete(url: str, auth: tuple[str, str]) -> None:
    """A DELETE to the management API, tried again when a busy broker dropped it; its answer is not judged (clean-up:
    a vhost already gone is fine, as rabbitmqctl's failures were)."""
    for attempt in range(3):
        try:
            httpx.delete(url, auth=auth, timeout=120)
            return
        except httpx.TransportError:
            if attempt == 2:
                raise


@pytest.fixture(scope="session")
def infra() -> Iterator[Infra]:
    amqp = os.environ.get("PARAAF_TEST_AMQP_URL")
    database = os.environ.get("PARAAF_TEST_DATABASE_URL")
    containers = []
    if not amqp and not _answers(LOCAL_AMQP, 5672) and _docker_answers():
        from testcontainers.rabbitmq import RabbitMqContainer

        rabbit = RabbitMqContainer("rabbitmq:3.13").start()
        containers.append(rabbit)
        amqp = f"amqp://guest:guest@{rabbit.get_container_host_ip()}:{rabbit.get_exposed_port(5672)}/"
    if not database and not _answers(LOCAL_DATABASE, 5432) and _docker_answers():
        from testcontainers.postgres import PostgresContainer

        postgres = PostgresContainer("postgres:16").start()
        containers.append(postgres)
        database = postgres.get_connection_url(driver=None)
    amqp = amqp or LOCAL_AMQP
    rabbit_container = next((c for c in containers if c.__class__.__name__ == "RabbitMqContainer"), None)
    janitor = Janitor()
    try:
        yield Infra(amqp, database or LOCAL_DATABASE, VhostAdmin(amqp, rabbit_container), janitor)
    finally:
        janitor.close()
        for container in containers:
            container.stop()


def fresh_name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session")
def softhsm(tmp_path_factory: pytest.TempPathFactory) -> "SoftHsm":
    """The session's SoftHSM2 token (PARAAF_PKCS11_*); an error, never a skip, when softhsm2 is not installed."""
    from tests.support.softhsm import SoftHsm

    return SoftHsm(tmp_path_factory.mktemp("softhsm"))


@pytest.fixture(scope="session")
def secrets_dir(tmp_path_factory: pytest.TempPathFactory, infra: Infra) -> Iterator[str]:
    """Where every test's services find their credentials; the session's users and roles go at its end."""
    yield str(tmp_path_factory.mktemp("secrets"))
    if infra.janitor is not None:
        infra.janitor.wait()
    _remove_session_accounts(infra)


def _remove_session_accounts(infra: Infra) -> None:
    """The session's broker users (through the management API: a rabbitmqctl call per user took ~1 s each, a dozen
    at the end of every worker's session), its set-up templates and its database roles."""
    with contextlib.suppress(httpx.HTTPError, BrokerAdminError):  # clean-up: users left behind are harmless
        users = httpx.get(f"{MANAGEMENT_BASE}/users", auth=_MANAGEMENT_AUTH, timeout=120).raise_for_status().json()
        ManagementApi(MANAGEMENT_API).delete_users(u["name"] for u in users if u["name"].startswith(SESSION_PREFIX + "."))

    async def drop_roles() -> None:
        while infra.templates:  # first: the roles own what a set-up template holds
            await infra.templates.popitem()[1].drop()
        admin = await asyncpg.connect(infra.database_url)
        try:
            for row in await admin.fetch("SELECT rolname FROM pg_roles WHERE rolname LIKE $1", SESSION_PREFIX + "\\_%"):
                with contextlib.suppress(asyncpg.PostgresError):
                    await admin.execute(f'DROP ROLE "{row["rolname"]}"')
        finally:
            await admin.close()

    asyncio.run(drop_roles())


def admin_settings(database_url: str, amqp_url: str, secrets: str, **changes: object) -> AdminSettings:
    return AdminSettings(
        database_url=database_url,
        amqp_url=amqp_url,
        secrets_dir=secrets,
        broker_user_prefix=SESSION_PREFIX,
        db_role_prefix=SESSION_PREFIX,
        **changes,
    )


def operator_environment(settings: AdminSettings) -> dict[str, str]:
    """An operator's shell on this machine after `paraaf setup`: the administrator's URLs and where the credentials are."""
    return {
        **os.environ,
        "PARAAF_DATABASE_URL": settings.database_url,
        "PARAAF_AMQP_URL": settings.amqp_url,
        "PARAAF_SECRETS_DIR": str(settings.secrets_path),
        "PARAAF_BROKER_USER_PREFIX": settings.broker_user_prefix,
        "PARAAF_DB_ROLE_PREFIX": settings.db_role_prefix,
        "COLUMNS": "200",
    }


@pytest.fixture
async def shell(provision) -> dict[str, str]:
    """The environment `paraaf` runs in on a machine where `paraaf setup` ran."""
    return operator_environment(await provision())


@pytest.fixture
def provision(database_url: str, amqp_url: str, secrets_dir: str):
    """``await provision(**settings)``: what `paraaf setup` makes, for this test's database and vhost; returns the settings.
    The database is a copy of the session's set-up template (``database_url``), so it may only add to the default
    schemas and services and keep the default organisation."""

    async def provisioned(
        topology: Topology = TOPOLOGY, schemas: tuple = SCHEMAS, services: tuple = SERVICES, **changes: object
    ) -> AdminSettings:
        assert (
            set(SCHEMAS) <= set(schemas) and set(SERVICES) <= set(services) and not {"org", "organisation_name"} & set(changes)
        ), "provision() copies a database set up with the default schemas, services and organisation: add to them only"
        settings = admin_settings(database_url, amqp_url, secrets_dir, **changes)
        await setup_database(settings, schemas, services)
        await setup_broker(settings, topology, ManagementApi(MANAGEMENT_API))
        return settings

    return provisioned


@asynccontextmanager
async def fresh_database(infra: Infra, template: str | None = None) -> AsyncIterator[str]:
    """A new database, empty or a copy of ``template``; dropped afterwards."""
    name = fresh_name("paraaf_test")
    admin = await asyncpg.connect(infra.database_url)
    await admin.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    await admin.close()
    yield urlunsplit(urlsplit(infra.database_url)._replace(path="/" + name))
    await asyncio.to_thread(
        infra.clean_up, f"dropping database {name}", lambda: asyncio.run(_drop_database(infra.database_url, name))
    )


async def _drop_database(admin_url: str, name: str) -> None:
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@asynccontextmanager
async def fresh_vhost(infra: Infra) -> AsyncIterator[str]:
    """A new RabbitMQ vhost; deleted afterwards."""
    name = fresh_name("paraaf-test")
    url = await asyncio.to_thread(infra.vhost_admin.create, name)
    yield url
    await asyncio.to_thread(infra.clean_up, f"deleting vhost {name}", lambda: infra.vhost_admin.delete(name))


@asynccontextmanager
async def city_on_fresh_install(
    infra: Infra, secrets_dir: str, name: str, *, scale: Mapping[str, int] = {}, **env: str
) -> AsyncIterator["System"]:
    """The demo city on its own new database and vhost, every service its own process (``scale``: several of some),
    with an SMTP server (``system.smtp``); for a package of tests that share one running city. The database is a copy
    of the session's set-up template, on which the city's `paraaf setup` then runs (as on a fresh install, but quicker)."""
    from tests.support.system import demo_city

    smtp = SmtpServer()
    await smtp.start()
    try:
        template = await infra.set_up_template(secrets_dir).ready()
        async with fresh_database(infra, template) as database_url, fresh_vhost(infra) as amqp_url:
            async with demo_city(
                name, database_url=database_url, amqp_url=amqp_url, smtp=smtp, secrets_dir=secrets_dir, scale=scale, **env
            ) as system:
                system.smtp = smtp  # type: ignore[attr-defined]
                yield system
    finally:
        await smtp.stop()


@pytest.fixture
async def database_url(request: pytest.FixtureRequest, infra: Infra, secrets_dir: str) -> AsyncIterator[str]:
    """A new database for this test, dropped afterwards: empty, or for a test that provisions it a copy of the set-up
    template, on which ``provision`` runs `paraaf setup` again (quickly: every migration is there)."""
    template = await infra.set_up_template(secrets_dir).ready() if "provision" in request.fixturenames else None
    async with fresh_database(infra, template) as url:
        yield url


@pytest.fixture
async def amqp_url(infra: Infra) -> AsyncIterator[str]:
    """A new RabbitMQ vhost for this test; deleted afterwards."""
    async with fresh_vhost(infra) as url:
        yield url


@pytest.fixture
async def smtp_server() -> AsyncIterator[SmtpServer]:
    """A real SMTP server (aiosmtpd) in this process, keeping what it receives."""
    server = SmtpServer()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def oidc_provider() -> Iterator[OidcProvider]:
    """A real OpenID Connect provider on the loopback (oidc-provider-mock), new for each test."""
    with run_oidc_provider() as provider:
        yield provider
