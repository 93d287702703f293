"""The cluster tests: a three-node RabbitMQ cluster and a PostgreSQL primary with its standby, started on this
machine for the package (deploy/cluster/start.sh, which first removes what an aborted run left) and removed after
it even when a test fails. Their report goes to a file, so the summary prints it also when another process (a
pytest-xdist worker) ran them."""

import os
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from services.admin.broker import admin_for, setup_broker
from services.admin.cli import setup_portal
from services.admin.config import AdminSettings
from services.admin.database import setup_database
from services.intake.domain import SourcePolicy
from shared.topology import TOPOLOGY
from tests.support.cluster import LocalCluster
from tests.support.smtp import SmtpServer
from tests.support.system import ARTIFACTS, System

REPORT = ARTIFACTS / "cluster-report.txt"
_SESSION_STARTED = time.time()

def report(line: str) -> None:
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    with REPORT.open("a") as handle:
        handle.write(line + "\n")

def pytest_terminal_summary(terminalreporter: Any) -> None:
    if REPORT.exists() and REPORT.stat().st_mtime >= _SESSION_STARTED:
        terminalreporter.section("cluster: nodes lost while documents flow")
        for line in REPORT.read_text().splitlines():
            terminalreporter.write_line(line)

@pytest.fixture(scope="package")
def cluster() -> Iterator[LocalCluster]:
    if os.geteuid() != 0:
        pytest.fail("the cluster tests start RabbitMQ nodes and PostgreSQL clusters: run them as root (CI does)")
    REPORT.unlink(missing_ok=True)
    local = LocalCluster()
    try:
        local.start()
        yield local
    finally:
        local.stop(keep_logs_in=ARTIFACTS / "cluster")

class ClusterSystem(System):
    """The services pointed at the cluster: only their URLs (and the management API setup uses) differ."""

    management_api: str = ""

    @property
    def admin_settings(self) -> AdminSettings:
        return AdminSettings(**self.settings.model_dump(), broker_admin_api=self.management_api)

@asynccontextmanager
async def city_on_cluster(cluster: LocalCluster, secrets_dir: Path, name: str) -> AsyncIterator[ClusterSystem]:
    """The demo city on the cluster, set up as `paraaf setup` does, every service its own process."""

    smtp = SmtpServer()
    await smtp.start()
    system = ClusterSystem(
        name=name, database_url=cluster.database_url("paraaf_cluster"), amqp_url=cluster.amqp_url, smtp=smtp,
        secrets_dir=str(secrets_dir),
    )
    system.management_api = cluster.management_api
    system.smtp = smtp  # type: ignore[attr-defined]
    try:
        await setup_database(system.admin_settings)
        await setup_broker(system.admin_settings, TOPOLOGY, admin_for(system.admin_settings))
        await setup_portal(system.admin_settings)
        await system.register(SourcePolicy("notula", "default", ad_hoc_steps=True))
        await system.load_demo_city()
        try:
            await system.start(timeout=180)
            yield system
        finally:
            codes = system.stop()
        assert all(code == 0 for code in codes.values()), f"a service did not stop cleanly: {codes}"
    finally:
        await smtp.stop()
