"""Many cities on one installation, against one city, in the same run: what an organisation costs.

* **50 orgs × 20 documents** (defaults): each org set up as ``paraaf org create`` and the ``--org`` commands do it
  (registry row, its CA, its directory, its flow, its source with a broker user of its own, its own portal host),
  then every org's source submits its 20 documents at once and an automatic signer (tests/support/autosigner.py)
  signs every link mailed, through each org's own portal host. Every service its own process.
* **1 org × 1000 documents**: the same, one org.

Printed: setup time per org (median and total), throughput (documents completed per second, first submit to last
completion) and its ratio, database size and broker objects (queues, users) per org.

* **Per-org vhosts, for the decision** (``--vhosts N``, default 50): N vhosts, each with Paraaf's whole topology
  declared (as `paraaf broker setup` would in each), and 5 connections per vhost (one per service: an AMQP
  connection serves one vhost); time, queues, broker memory before and after. The broker is shared with
  whatever else runs on the machine: memory figures are deltas of the whole node, so noisy.

Run: ``python -m bench.orgs [--orgs 50] [--docs 20] [--single 1000] [--vhosts 50]``. Needs PostgreSQL and
RabbitMQ (management API on 15672) as the tests do (PARAAF_TEST_DATABASE_URL: another PostgreSQL;
PARAAF_TEST_AMQP_URL with PARAAF_BENCH_MANAGEMENT_API: another RabbitMQ, e.g. a node of its own).
"""

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import aio_pika
import asyncpg
import httpx

from services.admin.broker import declare_topology
from services.admin.orgs import create_org_authority
from services.intake.sources import SourcePolicy
from services.router.cli import import_directory_file, load_flow_folder
from services.router.config import RouterSettings
from shared import orgs
from shared.topology import TOPOLOGY
from tests.conftest import LOCAL_AMQP, LOCAL_DATABASE, Infra, VhostAdmin, _remove_session_accounts, fresh_database, fresh_vhost
from tests.support import system as system_module
from tests.support.autosigner import AutoSigner
from tests.support.pdfs import make_pdf
from tests.support.session import SESSION_PREFIX
from tests.support.smtp import SmtpServer
from tests.support.system import System, submission
from tests.support.towns import Town, portal_in_front_of, town_directory, town_flows

__all__ = ["main"]

AMQP = os.environ.get("PARAAF_TEST_AMQP_URL", LOCAL_AMQP)
API = os.environ.get("PARAAF_BENCH_MANAGEMENT_API", "http://127.0.0.1:15672/api")  # the management API of that broker
AUTH = ("guest", "guest")
FRESH = httpx.Limits(max_keepalive_connections=0)  # the management API drops idle connections: a new one per request


class _ApiVhosts(VhostAdmin):
    """Vhosts through the management API of the broker measured (which need not be this machine's default node)."""

    def create(self, name: str) -> str:
        httpx.put(f"{API}/vhosts/{quote(name, safe='')}", auth=AUTH).raise_for_status()
        httpx.put(f"{API}/permissions/{quote(name, safe='')}/guest", auth=AUTH,
                  json={"configure": ".*", "write": ".*", "read": ".*"}).raise_for_status()
        return urlunsplit(urlsplit(AMQP)._replace(path="/" + quote(name, safe="")))

    def delete(self, name: str) -> None:
        httpx.delete(f"{API}/vhosts/{quote(name, safe='')}", auth=AUTH)


@dataclass
class Phase:
    orgs: int
    docs: int
    setup_seconds: list[float] = field(default_factory=list)
    run_seconds: float = 0.0
    database_bytes: int = 0
    queues: int = 0
    users: int = 0
    answers: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return self.orgs * self.docs

    @property
    def throughput(self) -> float:
        return self.total / self.run_seconds


async def _set_up_org(system: System, town: Town, folder: Path, flows: Path) -> float:
    """What `paraaf org create` and the `--org` commands do for one org, in this process; its seconds."""
    started = time.perf_counter()
    conn = await asyncpg.connect(system.env["PARAAF_DATABASE_URL"])
    try:
        await orgs.create_org(conn, town.key, town.name, town.url)
    finally:
        await conn.close()
    await create_org_authority(system.admin_settings, town.key)
    router = RouterSettings(**system.settings.model_dump())
    await import_directory_file(router, town_directory(folder, town), town.key)
    await load_flow_folder(router, flows, town.key)
    await system.register(SourcePolicy(town.source, town.key))
    return time.perf_counter() - started


@asynccontextmanager
async def _installation(infra: Infra, secrets: str, name: str, count: int, phase: Phase) -> AsyncIterator[tuple[System, list[Town]]]:
    folder = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
    smtp = SmtpServer()
    await smtp.start()
    try:
        async with fresh_database(infra) as database_url, fresh_vhost(infra) as amqp_url:
            system = System(
                name=name, database_url=database_url, amqp_url=amqp_url, smtp=smtp, secrets_dir=secrets,
                extra_env={"PARAAF_DB_POOL_SIZE": "2"},  # PostgreSQL's 100 connections are shared with other runs here
            )
            system.smtp = smtp  # type: ignore[attr-defined]
            os.environ["PARAAF_KEY_SECRET"] = system.env["PARAAF_KEY_SECRET"]  # opens each org's new CA, as the signer does
            os.environ["PARAAF_DATA_DIR"] = system.env["PARAAF_DATA_DIR"]
            await system.set_up()
            taken = set(system.ports.values())
            towns = [Town(f"{name}-{n:03d}", f"Stad {n:03d}", portal_in_front_of(system.ports["signer"], taken)) for n in range(count)]
            flows = town_flows(folder)
            for town in towns:
                await town.portal.start()
                phase.setup_seconds.append(await _set_up_org(system, town, folder, flows))
            try:
                await system.start()
                yield system, towns
            finally:
                system.stop()
                for town in towns:
                    await town.portal.stop()
    finally:
        await smtp.stop()


async def _completed(database_url: str, total: int, timeout: float) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        deadline = time.monotonic() + timeout
        while (done := await conn.fetchval("SELECT count(*) FROM router.instances WHERE status = 'completed'")) < total:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{done} of {total} documents completed within {timeout:.0f} s")
            await asyncio.sleep(0.5)
    finally:
        await conn.close()


async def _broker_objects(system: System, name: str) -> tuple[int, int]:
    vhost = urlsplit(system.amqp_url).path.lstrip("/")
    async with httpx.AsyncClient(auth=AUTH, limits=FRESH) as client:
        queues = (await client.get(f"{API}/queues/{quote(vhost, safe='')}", params={"columns": "name"})).json()
        users = (await client.get(f"{API}/users", params={"columns": "name"})).json()
    return len(queues), sum(1 for u in users if u["name"].startswith(f"{SESSION_PREFIX}.source.bron-{name}-"))


async def _flow(infra: Infra, secrets: str, name: str, phase: Phase) -> None:
    pdf = make_pdf()
    async with _installation(infra, secrets, name, phase.orgs, phase) as (system, towns):
        smtp: SmtpServer = system.smtp  # type: ignore[attr-defined]
        async with AutoSigner(smtp, parallel=4) as signer:
            started = time.perf_counter()
            await asyncio.gather(*(
                system.publish_many(
                    [submission(pdf, source=t.source, external_ref=f"{t.key}-{n}", title=f"Besluit {t.name} {n}", flow="besluit",
                                submitted_by="griffier") for n in range(phase.docs)],
                    source=t.source,
                )
                for t in towns
            ))
            await _completed(system.env["PARAAF_DATABASE_URL"], phase.total, timeout=60 + phase.total * 2.0)
            phase.run_seconds = time.perf_counter() - started
            phase.answers = dict(signer.answers)
        conn = await asyncpg.connect(system.env["PARAAF_DATABASE_URL"])
        try:
            phase.database_bytes = await conn.fetchval("SELECT pg_database_size(current_database())")
        finally:
            await conn.close()
        phase.queues, phase.users = await _broker_objects(system, name)


async def _node(client: httpx.AsyncClient) -> tuple[int, int, int]:
    """The broker's memory, file descriptors in use and their limit (all nodes), once it settled after a burst."""
    await asyncio.sleep(6)  # the management API samples every 5 s
    nodes = (await client.get(f"{API}/nodes", params={"columns": "mem_used,fd_used,fd_total"})).json()
    return sum(n["mem_used"] for n in nodes), sum(n["fd_used"] for n in nodes), sum(n["fd_total"] for n in nodes)


async def _vhosts(infra: Infra, count: int) -> None:
    """The cost of giving each org a vhost of its own: the whole topology in each, and one connection per service."""
    names = [f"paraaf-bench-org-{os.getpid()}-{n:03d}" for n in range(count)]
    made: list[str] = []
    connections: list[aio_pika.abc.AbstractConnection] = []
    async with httpx.AsyncClient(auth=AUTH, timeout=60, limits=FRESH) as client:
        (mem0, fd0, fds) = await _node(client)
        started = time.perf_counter()
        try:
            for name in names:
                (await client.put(f"{API}/vhosts/{quote(name, safe='')}")).raise_for_status()
                made.append(name)
                (await client.put(f"{API}/permissions/{quote(name, safe='')}/guest",
                                  json={"configure": ".*", "write": ".*", "read": ".*"})).raise_for_status()
                await declare_topology(urlunsplit(urlsplit(AMQP)._replace(path="/" + quote(name, safe=""))), TOPOLOGY, delivery_limit=5)
        except (httpx.HTTPError, aio_pika.exceptions.AMQPError, OSError) as exc:
            print(f"per-org vhosts: the broker stopped taking new vhosts at number {len(made)}: {exc!r}")
            made = made[:-1]
        declared = time.perf_counter() - started
        try:
            (mem1, fd1, _) = await _node(client)
            queues = 0
            for name in made:
                queues += len((await client.get(f"{API}/queues/{quote(name, safe='')}", params={"columns": "name"})).json())
            for name in made:
                url = urlunsplit(urlsplit(AMQP)._replace(path="/" + quote(name, safe="")))
                connections += [await aio_pika.connect(url) for _ in range(5)]
            (mem2, fd2, _) = await _node(client)
        finally:
            for connection in connections:
                with suppress(Exception):
                    await connection.close()
            for name in names:
                with suppress(httpx.HTTPError):
                    await client.delete(f"{API}/vhosts/{quote(name, safe='')}")
    n, mib = max(len(made), 1), 1024 * 1024
    print(f"per-org vhosts, {len(made)}: topology declared in {declared:.1f} s ({declared / n:.2f} s per vhost); {queues} queues"
          f" ({queues / n:.0f} per vhost)")
    print(f"  broker memory +{(mem1 - mem0) / mib:.0f} MiB ({(mem1 - mem0) / n / mib:.2f} MiB per vhost), file descriptors"
          f" {fd0} -> {fd1} of {fds} ({(fd1 - fd0) / n:.1f} per vhost)")
    print(f"  with {len(connections)} connections (5 per vhost, one per service): memory +{(mem2 - mem1) / mib:.0f} MiB more,"
          f" file descriptors {fd2}")


def _report(many: Phase, one: Phase) -> None:
    mib = 1024 * 1024
    for label, phase in (("many", many), ("one", one)):
        print(f"{label}: {phase.orgs} org(s) × {phase.docs} documents = {phase.total}: {phase.run_seconds:.1f} s,"
              f" {phase.throughput:.2f} documents/s; setup {sum(phase.setup_seconds):.1f} s"
              f" (median {statistics.median(phase.setup_seconds):.2f} s per org); database {phase.database_bytes / mib:.1f} MiB;"
              f" broker: {phase.queues} queues, {phase.users} source user(s); signer tries {phase.answers}")
    extra = max(many.orgs - one.orgs, 1)
    print(f"throughput ratio many/one: {many.throughput / one.throughput:.2f}")
    print(f"per extra org: setup {statistics.median(many.setup_seconds):.2f} s (median),"
          f" database {(many.database_bytes - one.database_bytes) / extra / 1024:.0f} KiB,"
          f" broker {(many.queues - one.queues) / extra:.1f} queue(s) and {(many.users - one.users) / extra:.1f} user(s)")


async def run(infra: Infra, args: argparse.Namespace) -> None:
    if args.vhosts:
        await _vhosts(infra, args.vhosts)
    if not args.orgs:
        return
    many, one = Phase(args.orgs, args.docs), Phase(1, args.single)
    with tempfile.TemporaryDirectory() as secrets:
        await _flow(infra, secrets, "many", many)
        await _flow(infra, secrets, "one", one)
    _report(many, one)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.orgs", description=__doc__.split("\n\n")[0])
    parser.add_argument("--orgs", type=int, default=50, help="0: measure the vhosts only")
    parser.add_argument("--docs", type=int, default=20, help="documents per org in the many-orgs run")
    parser.add_argument("--single", type=int, default=1000, help="documents of the one org")
    parser.add_argument("--vhosts", type=int, default=50, help="per-org vhosts to measure (0: skip)")
    args = parser.parse_args(argv)
    infra = Infra(AMQP, os.environ.get("PARAAF_TEST_DATABASE_URL", LOCAL_DATABASE), _ApiVhosts(AMQP))
    system_module.MANAGEMENT_API = API.replace("://", "://guest:guest@", 1)  # where System sets up broker users
    try:
        asyncio.run(run(infra, args))
    finally:
        _remove_session_accounts(infra)


if __name__ == "__main__":
    main()
