"""What must hold after any run of a city, however many processes each service ran as (issue 15): no step
opened twice, no request moved twice (an absence applied once), at most one outcome per document, one
signature per request, each mail (request, reminder, notice) sent once, and an audit chain that is one line
with each event in it once and each head sealed once.

The chain is checked here, over the administrator's connection, rather than with `paraaf audit verify`: cities
of one test session share the services' credentials directory, so by the end of a package another city's
`paraaf setup` may have replaced the files the command would read.

After faults (tests/faults, tests/cluster), also: no service process dead, no dead letter, no outbox row left
unpublished, no mail sent twice as two messages."""

import asyncio
import time
from collections import Counter

import asyncpg

from services.admin.database import SERVICES
from services.audit.chain import verify_chain
from shared import amqp
from shared.topology import TOPOLOGY
from tests.support.system import System

__all__ = [
    "assert_each_effect_once",
    "dead_letters",
    "dead_services",
    "duplicate_mails",
    "each_effect_once_problems",
    "outbox_left_stale",
    "resent_mails",
]

_CHECKS = {
    "a step's request opened twice": (
        "SELECT document_id, step, entry, count(*) FROM router.requests WHERE replaces IS NULL"
        " GROUP BY 1, 2, 3 HAVING count(*) > 1"
    ),
    "a request moved (reassigned) twice": (
        "SELECT replaces, count(*) FROM router.requests WHERE replaces IS NOT NULL GROUP BY 1 HAVING count(*) > 1"
    ),
    "a document with more than one outcome": (
        "SELECT document_id, array_agg(routing_key) FROM audit.log"
        " WHERE routing_key IN ('document.completed', 'document.declined', 'document.withdrawn')"
        " GROUP BY 1 HAVING count(*) > 1"
    ),
    "a request signed twice": (
        "SELECT payload::jsonb #>> '{event,request_id}', count(*) FROM audit.log WHERE routing_key = 'signature.signed'"
        " GROUP BY 1 HAVING count(*) > 1"
    ),
    "a signature recorded twice by the router": (
        "SELECT document_id, s ->> 'request_id', count(*) FROM router.instances, jsonb_array_elements(signatures) s"
        " GROUP BY 1, 2 HAVING count(*) > 1"
    ),
    "an event in the audit log twice": "SELECT event_id, count(*) FROM audit.log GROUP BY 1 HAVING count(*) > 1",
    "a gap or fork in the audit chain's numbering": (
        "SELECT count(*), max(seq) FROM audit.log HAVING count(*) <> coalesce(max(seq), 0)"
    ),
    "an audit head sealed twice": "SELECT seq, count(*) FROM audit.checkpoints GROUP BY 1 HAVING count(*) > 1",
}


async def each_effect_once_problems(system: System, *, resent_mails: bool = False) -> list[str]:
    """What went twice, or the chain's break; ``resent_mails``: a mail delivered again with its Message-ID is
    allowed (a notifier killed between the SMTP server's acceptance and its own commit)."""
    conn = await asyncpg.connect(system.env["PARAAF_DATABASE_URL"])
    try:
        problems = [f"{what}: {[tuple(r) for r in rows]}" for what, sql in _CHECKS.items() if (rows := await conn.fetch(sql))]
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            head = await conn.fetchrow("SELECT seq, hash FROM audit.head WHERE id = 1")
            rows = await conn.fetch("SELECT seq, payload, prev_hash, hash FROM audit.log ORDER BY seq")
        if broken := verify_chain([tuple(r) for r in rows], (head["seq"], head["hash"])):
            problems.append(f"the audit chain breaks: {broken}")
    finally:
        await conn.close()
    return problems + ([] if resent_mails else _mailed_twice(system))


def _mailed_twice(system: System) -> list[str]:
    """Mails (by Message-ID, which the notifier derives from its spooled mail, itself one per request, reminder
    number or notice) that reached a recipient twice: two notifier processes sent one mail."""
    smtp = getattr(system, "smtp", None)
    if smtp is None:
        return []
    delivered = Counter((to, m.subject, m.message["Message-ID"]) for m in smtp.received for to in m.to)
    return [f"mailed twice: {mail}" for mail, n in delivered.items() if n > 1]


async def assert_each_effect_once(system: System, *, resent_mails: bool = False) -> None:
    assert not (problems := await each_effect_once_problems(system, resent_mails=resent_mails)), problems


async def dead_letters(system: System) -> dict[str, int]:
    """Messages in each dead-letter queue and in `unrouted`, those holding any."""
    names = [q.dead_letter_queue for q in TOPOLOGY.queues] + ["unrouted"]
    connection = await amqp.connect(system.amqp_url)  # any live node of a cluster's URL (tests/cluster uses it too)
    async with connection:
        channel = await connection.channel()
        counts = {name: (await channel.declare_queue(name, passive=True)).declaration_result.message_count for name in names}
    return {name: n for name, n in counts.items() if n}


async def outbox_left_stale(system: System, timeout: float = 30.0) -> dict[str, int]:
    """Outbox rows older than 10 s once the relays had time to catch up: a row written while the broker was away
    is old by the time it comes back, and a relay retries at most 10 s apart (shared/messaging.py)."""
    deadline = time.monotonic() + timeout
    while (stale := await stale_outbox_rows(system)) and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
    return stale


async def stale_outbox_rows(system: System) -> dict[str, int]:
    """Outbox rows older than 10 s, per service schema, those holding any."""
    conn = await asyncpg.connect(system.env["PARAAF_DATABASE_URL"])
    try:
        counts = {
            schema: await conn.fetchval(f"SELECT count(*) FROM {schema}.outbox WHERE created_at < now() - interval '10 s'")
            for schema in SERVICES
        }
    finally:
        await conn.close()
    return {schema: n for schema, n in counts.items() if n}


def duplicate_mails(system: System) -> list[tuple[str, str]]:
    """(recipient, subject) pairs mailed more than once as different messages: each signer gets one mail per
    document and kind. The same message twice (one Message-ID: the notifier killed between the SMTP server's
    acceptance and its own commit) is shown to the reader as one mail, and is counted by resent_mails instead."""
    distinct = {(to, m.subject, m.message["Message-ID"]) for m in system.smtp.received for to in m.to}  # type: ignore[attr-defined]
    sent = Counter((to, subject) for to, subject, _ in distinct)
    return [pair for pair, n in sent.items() if n > 1]


def resent_mails(system: System) -> int:
    """Copies of a mail already delivered, with its Message-ID (the notifier died before it recorded the send)."""
    everything = [(to, m.message["Message-ID"]) for m in system.smtp.received for to in m.to]  # type: ignore[attr-defined]
    return len(everything) - len(set(everything))


def dead_services(system: System) -> list[str]:
    return [name for name, process in system.processes.items() if process.poll() is not None]
