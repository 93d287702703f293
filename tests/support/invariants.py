"""What must hold after any run of a city, however many processes each service ran as (issue 15): no step
opened twice, no request moved twice (an absence applied once), at most one outcome per document, one
signature per request, each mail sent once, and an audit chain that verifies with each event in it once."""

from collections import Counter

import asyncpg

from tests.support.system import System

__all__ = ["assert_each_effect_once", "each_effect_once_problems"]

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
}


async def each_effect_once_problems(system: System) -> list[str]:
    conn = await asyncpg.connect(system.env["PARAAF_DATABASE_URL"])
    try:
        problems = [f"{what}: {[tuple(r) for r in rows]}" for what, sql in _CHECKS.items() if (rows := await conn.fetch(sql))]
    finally:
        await conn.close()
    problems += _mailed_twice(system)
    verdict = system.cli("audit", "verify", check=False)
    if verdict.returncode != 0 or "intact" not in verdict.stdout:
        problems.append(f"audit verify: {verdict.stdout}{verdict.stderr}")
    return problems


def _mailed_twice(system: System) -> list[str]:
    """The same mail (recipient and subject) sent as two messages: a request, reminder or notice sent twice. One
    message delivered twice (the same Message-ID: a notifier killed between SMTP's acceptance and its own commit)
    is one mail to its reader."""
    smtp = getattr(system, "smtp", None)
    if smtp is None:
        return []
    distinct = {(to, m.subject, m.message["Message-ID"]) for m in smtp.received for to in m.to}
    sent = Counter((to, subject) for to, subject, _ in distinct)
    return [f"mailed twice: {pair}" for pair, n in sent.items() if n > 1]


async def assert_each_effect_once(system: System) -> None:
    assert not (problems := await each_effect_once_problems(system)), problems
