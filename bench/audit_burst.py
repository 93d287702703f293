"""Audit under a burst: 20,000 events published at once on esign.events while
the whole pipeline runs (every service its own process, the demo city on a
fresh database and vhost, as the tests start it); how fast the audit service
appends them to the hash chain, sustained, until the last one is in.

    python -m bench.audit_burst [EVENTS]

The events are ``notification.sent``, published as the notifier publishes
them (its own broker user, persistent, confirmed): only the audit service
consumes that key, so the burst measures the log, not the other services.
Baselines, measured in the same run on the same database, the same number of
appends made directly through the audit store in one connection: one
transaction each (what the service did per message before batching, minus
the broker), and batches of the service's size, one transaction each (what
the service does now, minus the broker: the ceiling the database sets) —
read the ratios; the machines are shared and noisy. Less noisy: the CPU time
the audit process itself spent per event during the burst (from /proc), and
the load average, printed with the figures.
"""

import asyncio
import os
import sys
import tempfile
import time
import uuid

import aio_pika
import asyncpg

from services.audit.main import BATCHING
from services.audit.store import PostgresAuditStore
from shared.credentials import read_identity
from shared.events import NotificationSent
from shared.topology import EVENTS
from tests.conftest import LOCAL_AMQP, LOCAL_DATABASE, Infra, VhostAdmin, _remove_session_accounts, city_on_fresh_install
from tests.support.system import System

GOAL = 2_000  # appends per second, sustained, on a 2-core machine with the pipeline running


def _event() -> NotificationSent:
    return NotificationSent(correlation_id=uuid.uuid4(), kind="signature_request", recipient="a@stad.be", subject="Ter ondertekening")


async def _count(database_url: str) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        return await conn.fetchval("SELECT count(*) FROM audit.log")
    finally:
        await conn.close()


def _cpu_seconds(pid: int) -> float:
    """User and system time a process has used so far."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _burst(system: System, events: int) -> float:
    """Publish ``events`` as the notifier, then wait until the log holds them all: appends per second."""
    audit_pid = system.processes["audit"].pid
    audit_cpu = _cpu_seconds(audit_pid)
    notifier = read_identity(system.settings, "notifier", needs=("amqp_url",))
    before = await _count(system.env["PARAAF_DATABASE_URL"])
    connection = await aio_pika.connect(notifier.amqp_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange(EVENTS.name, ensure=False)
        started = time.perf_counter()
        confirms = []
        for _ in range(events):
            event = _event()
            message = aio_pika.Message(event.to_json(), message_id=str(event.event_id), user_id=notifier.broker_user,
                                       content_type="application/json", delivery_mode=aio_pika.DeliveryMode.PERSISTENT)
            confirms.append(exchange.publish(message, routing_key=event.routing_key))
        await asyncio.gather(*confirms)
        published = time.perf_counter() - started
    while_publishing = await _count(system.env["PARAAF_DATABASE_URL"]) - before
    while await _count(system.env["PARAAF_DATABASE_URL"]) < before + events:
        await asyncio.sleep(0.2)
    seconds = time.perf_counter() - started
    audit_cpu = _cpu_seconds(audit_pid) - audit_cpu
    after = (events - while_publishing) / (seconds - published) if seconds > published else float("nan")
    print(f"burst: {events} events published in {published:.1f} s, {while_publishing} of them appended by then"
          f" ({while_publishing / published:,.0f}/s), the rest at {after:,.0f}/s; all appended after {seconds:.1f} s;"
          f" the audit process used {audit_cpu:.1f} s CPU ({audit_cpu / events * 1000:.3f} ms an event);"
          f" load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores", flush=True)
    return events / seconds


async def _baseline(database_url: str, events: int, batch: int) -> float:
    """The same appends straight through the audit store: one connection, ``batch`` events a transaction."""
    conn = await asyncpg.connect(database_url)
    try:
        started = time.perf_counter()
        for start in range(0, events, batch):
            async with conn.transaction():
                appends = [(NotificationSent.routing_key, _event().model_dump(mode="json")) for _ in range(min(batch, events - start))]
                await PostgresAuditStore(conn).append_many(appends)
        return events / (time.perf_counter() - started)
    finally:
        await conn.close()


async def run(infra: Infra, events: int) -> None:
    with tempfile.TemporaryDirectory() as secrets:
        async with city_on_fresh_install(infra, secrets, "bench-audit-burst") as system:
            burst = await _burst(system, events)
            single = await _baseline(system.env["PARAAF_DATABASE_URL"], events, 1)
            batched = await _baseline(system.env["PARAAF_DATABASE_URL"], events, BATCHING.size)
    print(f"audit appends under a burst, pipeline running:  {burst:,.0f}/s (goal ≥ {GOAL:,}/s)")
    print(f"baseline, direct appends, one per transaction:  {single:,.0f}/s")
    print(f"baseline, direct appends, {BATCHING.size} per transaction: {batched:,.0f}/s")
    print(f"ratio burst / one per transaction: {burst / single:.2f}; burst / batched: {burst / batched:.2f}")


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    infra = Infra(LOCAL_AMQP, LOCAL_DATABASE, VhostAdmin(LOCAL_AMQP))
    try:
        asyncio.run(run(infra, int(args[0]) if args else 20_000))
    finally:
        _remove_session_accounts(infra)  # the run's broker users and database roles


if __name__ == "__main__":
    main()
