"""A measurement, not a test (pytest collects only test_*.py; run it by path): the CPU time of the notifier's thread
and its socket writes by protocol (asyncpg = PostgreSQL round trips, asyncio = AMQP, aiosmtplib/services = SMTP,
aiohttp/anyio = the signer's link API) for N one-signature documents, paced PACE seconds apart, through the real
notifier in this process, with RabbitMQ, PostgreSQL, aiosmtpd and a stand-in for the signer's link API in other
threads. Two phases, as a signature's story reaches the notifier: the request mails (notify.signing-link); then, once
they went out, per document what follows the signature (signature.signed, document.completed, and the submitter's
notify.download-link mail); with the CPU its PostgreSQL backends spent meanwhile. STATEMENTS=1 lists the SQL
statements a document. Compare branches by running it alternately from each worktree:

    PYTHONPATH=$PWD N=200 PACE=0.03 python -m pytest -q -s tests/integration/measure_notifier.py
"""

import asyncio
import collections
import os
import threading
import time
from asyncio import selector_events
from datetime import timedelta

import aio_pika
import asyncpg

from shared import amqp
from shared.contract import Command, SendDownloadLink
from shared.credentials import read_identity
from shared.events import DocumentCompleted, SignatureRecord, Signed
from shared.topology import COMMANDS, EVENTS
from tests.support.net import free_port
from tests.support.notifier import ANN, ELEN, MONDAY, FakeClock, link_command, notifier_settings, running_notifier

N = int(os.environ.get("N", "200"))
PACE = float(os.environ.get("PACE", "0.015"))
WRITES: collections.Counter = collections.Counter()
MAIN = threading.get_ident()
_write = selector_events._SelectorSocketTransport.write


def _counting_write(self, data):
    if threading.get_ident() == MAIN:
        WRITES[type(self._protocol).__module__.split(".")[0]] += 1
    return _write(self, data)


STATEMENTS: collections.Counter = collections.Counter()
_do_execute = asyncpg.connection.Connection._do_execute
_execute = asyncpg.connection.Connection.execute


def _key(query):
    return " ".join(query.split()[:4])[:60]


async def _counting_do_execute(self, query, *a, **k):
    if threading.get_ident() == MAIN:
        STATEMENTS[_key(query)] += 1
    return await _do_execute(self, query, *a, **k)


async def _counting_execute(self, query, *args, **k):
    if threading.get_ident() == MAIN and not args:
        STATEMENTS[_key(query)] += 1
    return await _execute(self, query, *args, **k)




def drive(settings, database_url, smtp_server, messages, mails):
    """Publish ``messages`` (publisher, message) PACE apart, each in its publisher's name; wait until ``mails`` mails
    in all were sent and the outbox is empty."""

    async def run():
        identities = {name: read_identity(settings, name, needs=("amqp_url",)) for name in {p for p, _ in messages}}
        connections = {name: await amqp.connect(i.amqp_url) for name, i in identities.items()}
        try:
            exchanges = {}
            for name, conn in connections.items():
                channel = await conn.channel(publisher_confirms=True)
                exchanges[name, COMMANDS.name] = await channel.get_exchange(COMMANDS.name, ensure=False)
                exchanges[name, EVENTS.name] = await channel.get_exchange(EVENTS.name, ensure=False)
            for publisher, m in messages:
                exchange = COMMANDS.name if isinstance(m, Command) else EVENTS.name
                await exchanges[publisher, exchange].publish(
                    aio_pika.Message(m.model_dump_json().encode(), delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                                     user_id=identities[publisher].broker_user,
                                     message_id=str(getattr(m, "command_id", None) or m.event_id)), m.routing_key)
                await asyncio.sleep(PACE)
        finally:
            for conn in connections.values():
                await conn.close()
        db = await asyncpg.connect(database_url)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            sent = await db.fetchval("SELECT count(*) FROM notifier.mails WHERE status = 'sent'")
            left = await db.fetchval("SELECT count(*) FROM notifier.outbox")
            if sent == mails and left == 0 and len(smtp_server.received) >= mails:
                break
            await asyncio.sleep(0.05)
        await db.close()
        return sent, left

    return asyncio.run(run())


def after_signature(clock, command):
    """What reaches the notifier once the request of ``command`` (a one-signature document) was signed."""
    signed_at = clock()
    signature = SignatureRecord(request_id=command.request_id, step=1, action="sign", signer=ANN, signed_at=signed_at)
    signed = Signed(correlation_id=command.correlation_id, request_id=command.request_id, step=1, action="sign", signer=ANN,
                    signed_at=signed_at, pdf_sha256="0" * 64, revision=1)
    completed = DocumentCompleted(correlation_id=command.correlation_id, causation_id=signed.event_id, pdf_sha256="0" * 64,
                                  signatures=[signature], title=command.title, submitted_by=ELEN)
    download = SendDownloadLink(correlation_id=command.correlation_id, recipient=ELEN, title=command.title,
                                signatures=[signature], expires_at=clock() + timedelta(days=30))
    return [("signer", signed), ("router", completed), ("signer", download)]


def stand_in_signer(port, ready, stop):
    from aiohttp import web

    async def links(request):
        body = await request.json()
        return web.json_response({"links": [{"url": f"http://signer.test/s/{a['mail_id']}xxxxxxxxxxxxxxxxxxxxxxxxxxxx",
                                             "expires_at": "2026-03-23T10:00:00+00:00"} for a in body["links"]]})

    async def run():
        app = web.Application()
        app.router.add_post("/internal/links/batch", links)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        ready.set()
        while not stop.is_set():
            await asyncio.sleep(0.1)
        await runner.cleanup()

    asyncio.run(run())


async def test_measure(provision, smtp_server, database_url, monkeypatch):
    monkeypatch.setattr(selector_events._SelectorSocketTransport, "write", _counting_write)
    monkeypatch.setattr(asyncpg.connection.Connection, "_do_execute", _counting_do_execute)
    monkeypatch.setattr(asyncpg.connection.Connection, "execute", _counting_execute)
    admin = await provision()
    settings = notifier_settings(admin.database_url, admin.amqp_url, smtp_server, free_port(), secrets_dir=str(admin.secrets_dir)).model_copy(
        update={"scheduler_seconds": 30.0})
    clock = FakeClock(MONDAY)
    commands = [link_command(clock, ANN) for _ in range(N)]
    port, ready, stop = free_port(), threading.Event(), threading.Event()
    signer = threading.Thread(target=stand_in_signer, args=(port, ready, stop))
    signer.start()
    ready.wait()
    settings = settings.model_copy(update={"signer_internal_url": f"http://127.0.0.1:{port}"})
    try:
        await _measure(settings, admin, smtp_server, clock, commands)
    finally:
        stop.set()
        signer.join()


def _cpu_seconds(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except FileNotFoundError:  # gone meanwhile
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def backends(database_url):
    """CPU seconds so far of each PostgreSQL backend serving this test's database (the notifier's connections)."""
    conn = await asyncpg.connect(database_url)
    try:
        pids = await conn.fetch("SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")
    finally:
        await conn.close()
    return {r["pid"]: _cpu_seconds(r["pid"]) for r in pids}


async def _measure(settings, admin, smtp_server, clock, commands):
    async with running_notifier(settings, clock, None):
        await asyncio.sleep(1.0)
        before = await backends(admin.database_url)
        WRITES.clear()
        STATEMENTS.clear()
        t0, w0 = time.thread_time(), time.perf_counter()
        requested = [("signer", c) for c in commands]
        sent, left = await asyncio.to_thread(drive, settings, admin.database_url, smtp_server, requested, N)
        assert sent == N and left == 0, (sent, left)
        t1 = time.thread_time()
        then = [m for c in commands for m in after_signature(clock, c)]
        sent, left = await asyncio.to_thread(drive, settings, admin.database_url, smtp_server, then, 2 * N)
        t2, wall = time.thread_time(), time.perf_counter() - w0
        writes = dict(WRITES)
        after = await backends(admin.database_url)
    database = sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())
    if os.environ.get("STATEMENTS"):
        for k, v in STATEMENTS.most_common():
            print(f"{v / N:6.2f} {k}")
    assert sent == 2 * N and left == 0, (sent, left)
    print(f"\nRESULT N={N} cpu_ms_per_document={1000 * (t2 - t0) / N:.3f} (request mail {1000 * (t1 - t0) / N:.3f},"
          f" then {1000 * (t2 - t1) / N:.3f}) postgres_ms_per_document={1000 * database / N:.3f} wall={wall:.1f}s"
          " writes_per_document="
          + " ".join(f"{k}={v / N:.2f}" for k, v in sorted(writes.items())))
