"""A measurement, not a test (pytest collects only test_*.py; run it by path): the CPU time of the notifier's thread
and its socket writes by protocol (asyncpg = PostgreSQL round trips, asyncio = AMQP, aiosmtplib/services = SMTP,
aiohttp/anyio = the signer's link API) for N request mails, paced PACE seconds apart, through the real notifier in
this process, with RabbitMQ, PostgreSQL, aiosmtpd and a stand-in for the signer's link API in other threads.
STATEMENTS=1 lists the SQL statements a mail. Compare branches by running it alternately from each worktree:

    PYTHONPATH=$PWD N=200 PACE=0.03 python -m pytest -q -s tests/integration/measure_notifier.py
"""

import asyncio
import collections
import os
import threading
import time
from asyncio import selector_events

import aio_pika
import asyncpg

from shared import amqp
from shared.credentials import read_identity
from shared.topology import COMMANDS
from tests.support.net import free_port
from tests.support.notifier import ANN, MONDAY, FakeClock, link_command, notifier_settings, running_notifier

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




def drive(settings, database_url, smtp_server, commands):
    async def run():
        identity = read_identity(settings, "signer", needs=("amqp_url",))
        conn = await amqp.connect(identity.amqp_url)
        async with conn:
            channel = await conn.channel(publisher_confirms=True)
            target = await channel.get_exchange(COMMANDS.name, ensure=False)
            for c in commands:
                await target.publish(
                    aio_pika.Message(c.model_dump_json().encode(), delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                                     user_id=identity.broker_user, message_id=str(c.command_id)), c.routing_key)
                await asyncio.sleep(PACE)
        db = await asyncpg.connect(database_url)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            sent = await db.fetchval("SELECT count(*) FROM notifier.mails WHERE status = 'sent'")
            left = await db.fetchval("SELECT count(*) FROM notifier.outbox")
            if sent == N and left == 0 and len(smtp_server.received) >= N:
                break
            await asyncio.sleep(0.05)
        await db.close()
        return sent, left

    return asyncio.run(run())


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


async def _measure(settings, admin, smtp_server, clock, commands):
    async with running_notifier(settings, clock, None):
        await asyncio.sleep(1.0)
        WRITES.clear()
        STATEMENTS.clear()
        t0, w0 = time.thread_time(), time.perf_counter()
        sent, left = await asyncio.to_thread(drive, settings, admin.database_url, smtp_server, commands)
        cpu, wall = time.thread_time() - t0, time.perf_counter() - w0
        writes = dict(WRITES)
    if os.environ.get("STATEMENTS"):
        for k, v in STATEMENTS.most_common():
            print(f"{v / N:6.2f} {k}")
    assert sent == N and left == 0, (sent, left)
    print(f"\nRESULT N={N} cpu_ms_per_mail={1000 * cpu / N:.3f} wall={wall:.1f}s writes_per_mail="
          + " ".join(f"{k}={v / N:.2f}" for k, v in sorted(writes.items())))
