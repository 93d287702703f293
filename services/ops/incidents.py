"""Incidents: what needs a person, each with its document, cause, age and the
command that fixes it — a request nobody could stand in for
(routing.unresolved, still waiting), a mail that could not be delivered on a
document still under way (until a later mail for its request went out), a
signature the time-stamping service failed (until the request is signed), a
document stuck past PARAAF_STUCK_AFTER working days, an outcome a source's
webhook did not take within PARAAF_WEBHOOK_RETRY_HOURS (until it is
redelivered), and messages waiting in a dead-letter or holding queue. An operator
fixes one with that command, or dismisses it with a reason
(``incident.dismissed``, in the audit log with her name); either way it leaves
the list.
"""

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from services.ops.documents import Filters, listed, read_documents
from services.ops.rules import is_stuck

__all__ = [
    "Incident",
    "dead_letter_incidents",
    "incident_document",
    "incidents_now",
    "open_incidents",
    "why_not_dismissed",
]

_NAMESPACE = uuid.UUID("6f0b7c62-3d0e-4f7e-9a55-7a1c2a0e5e11")


@dataclass(frozen=True)
class Incident:
    id: str  # <kind>:<what it is about>, stable from one listing to the next
    kind: str  # routing, mail, timestamp, stuck, webhook, dead_letters
    document_id: uuid.UUID | None
    cause: str
    since: datetime | None
    fix: str  # the command that fixes it
    request_id: uuid.UUID | None = None  # the waiting request the fix acts on, when there is one


def incident_document(incident_id: str, document_id: uuid.UUID | None) -> uuid.UUID:
    """The id an incident's audit entries go under: its document's, or one derived from the incident."""
    return document_id or uuid.uuid5(_NAMESPACE, incident_id)


_UNRESOLVED = """
SELECT l.document_id, l.occurred_at, e->>'request_id' AS request_id, e->'signer'->>'id' AS person, e->>'reason' AS reason
  FROM audit.log l CROSS JOIN LATERAL (SELECT (l.payload::jsonb)->'event' AS e) x
  JOIN router.requests r ON r.request_id = (e->>'request_id')::uuid AND r.status = 'pending'
 WHERE l.routing_key = 'routing.unresolved' AND ($1::text IS NULL OR l.org = $1) ORDER BY l.seq
"""
# A failed mail about a request stays an incident while the request waits and no later mail about it went out.
_UNDELIVERED = """
SELECT l.document_id, l.occurred_at, l.event_id, e->>'recipient' AS recipient, e->>'reason' AS reason, e->>'kind' AS kind,
       (e->>'request_id')::uuid AS request_id, e->>'causation_id' AS mail_id
  FROM audit.log l CROSS JOIN LATERAL (SELECT (l.payload::jsonb)->'event' AS e) x
  JOIN router.instances i ON i.document_id = l.document_id AND i.status = 'active'
  LEFT JOIN router.requests r ON r.request_id = (e->>'request_id')::uuid
 WHERE l.routing_key = 'notification.failed' AND ($1::text IS NULL OR l.org = $1)
   AND (e->>'request_id' IS NULL OR r.status = 'pending')
   AND NOT EXISTS (SELECT 1 FROM audit.log s
                    WHERE s.routing_key = 'notification.sent' AND s.document_id = l.document_id AND s.seq > l.seq
                      AND (s.payload::jsonb)->'event'->>'request_id' = e->>'request_id')
 ORDER BY l.seq
"""
_UNSTAMPED = """
SELECT (e->>'request_id')::uuid AS request_id, (array_agg(l.document_id))[1] AS document_id, min(l.occurred_at) AS since,
       count(*) AS times, (array_agg(e->>'tsa_url' ORDER BY l.seq DESC))[1] AS tsa_url,
       (array_agg(e->>'reason' ORDER BY l.seq DESC))[1] AS reason
  FROM audit.log l CROSS JOIN LATERAL (SELECT (l.payload::jsonb)->'event' AS e) x
  JOIN router.requests r ON r.request_id = (e->>'request_id')::uuid AND r.status = 'pending'
 WHERE l.routing_key = 'timestamp.failed' AND ($1::text IS NULL OR l.org = $1)
 GROUP BY 1 ORDER BY 3
"""


async def _unresolved(conn: asyncpg.Connection, org: str | None) -> list[Incident]:
    return [
        Incident(
            f"routing:{r['request_id']}",
            "routing",
            r["document_id"],
            f"nobody can stand in for {r['person']}: {r['reason']}",
            r["occurred_at"],
            f"paraaf document reassign {r['request_id']} --to PERSON --reason '...'",
            uuid.UUID(r["request_id"]),
        )
        for r in await conn.fetch(_UNRESOLVED, org)
    ]


def _mail_fix(request_id: uuid.UUID | None, document_id: uuid.UUID, mail_id: str | None) -> str:
    kept = f"; its copy in notifier.events.dlq: paraaf dlq drop notifier.events {mail_id} --reason '...'" if mail_id else ""
    if request_id is None:
        return f"fix the address in the directory (paraaf directory import), or paraaf document withdraw {document_id}{kept}"
    return (
        f"fix the address in the directory (paraaf directory import), then paraaf document resend {request_id} "
        f"--reason '...'; or paraaf document reassign {request_id} --to PERSON, or paraaf document withdraw {document_id}"
        f"{kept}"
    )


async def _undelivered(conn: asyncpg.Connection, org: str | None) -> list[Incident]:
    return [
        Incident(
            f"mail:{r['event_id']}",
            "mail",
            r["document_id"],
            f"{r['kind']} mail to {r['recipient']} failed: {r['reason']}",
            r["occurred_at"],
            _mail_fix(r["request_id"], r["document_id"], r["mail_id"]),
            r["request_id"],
        )
        for r in await conn.fetch(_UNDELIVERED, org)
    ]


async def _unstamped(conn: asyncpg.Connection, org: str | None) -> list[Incident]:
    return [
        Incident(
            f"timestamp:{r['request_id']}",
            "timestamp",
            r["document_id"],
            f"the time-stamping service {r['tsa_url']} failed {r['times']} signature attempt(s): {r['reason']}",
            r["since"],
            f"make the time-stamping service answer (PARAAF_TSA_URL); then the signer presses Sign again (her link still "
            f"works), or paraaf document resend {r['request_id']} --reason '...' reminds her",
            r["request_id"],
        )
        for r in await conn.fetch(_UNSTAMPED, org)
    ]


# A webhook delivery given up stays an incident until a later delivery of it reached its receiver.
_ABANDONED = """
SELECT l.document_id, l.occurred_at, e->>'delivery_id' AS delivery_id, e->>'source' AS source, e->>'url' AS url,
       e->>'attempts' AS attempts, e->>'reason' AS reason
  FROM audit.log l CROSS JOIN LATERAL (SELECT (l.payload::jsonb)->'event' AS e) x
 WHERE l.routing_key = 'webhook.abandoned' AND ($1::text IS NULL OR l.org = $1)
   AND NOT EXISTS (SELECT 1 FROM audit.log s
                    WHERE s.routing_key = 'webhook.delivered' AND s.document_id = l.document_id AND s.seq > l.seq
                      AND (s.payload::jsonb)->'event'->>'delivery_id' = e->>'delivery_id')
 ORDER BY l.seq
"""


async def _abandoned(conn: asyncpg.Connection, org: str | None) -> list[Incident]:
    return [
        Incident(
            f"webhook:{r['delivery_id']}",
            "webhook",
            r["document_id"] if str(r["document_id"]) != r["delivery_id"] else None,
            f"the webhook of source {r['source']} ({r['url']}) did not take an outcome in {r['attempts']} attempts: {r['reason']}",
            r["occurred_at"],
            f"make {r['url']} answer (or change it: paraaf sources add {r['source']} ... --webhook URL), then"
            f" paraaf sources redeliver {r['source']}",
        )
        for r in await conn.fetch(_ABANDONED, org)
    ]


_WAITING = """
SELECT document_id, request_id, created_at FROM router.requests
 WHERE document_id = ANY($1::uuid[]) AND status = 'pending' ORDER BY created_at
"""


async def _stuck(conn: asyncpg.Connection, now: datetime, stuck_after: int, timezone: str, org: str | None) -> list[Incident]:
    """Stuck documents whose waiting request has itself waited too long: once an operator gave the step to someone
    else, the document may still be listed stuck by `paraaf documents`, but the incident is handled."""
    rows = listed(
        await read_documents(conn, Filters(status="stuck"), now, org),
        Filters(status="stuck"),
        now,
        stuck_after=stuck_after,
        timezone=timezone,
    )
    waiting: dict[uuid.UUID, list[asyncpg.Record]] = {}
    for r in await conn.fetch(_WAITING, [row.document_id for row in rows]):
        waiting.setdefault(r["document_id"], []).append(r)
    return [
        _stuck_incident(row.document_id, row.waiting_on, row.waiting_since, stuck_after, [r["request_id"] for r in requests])
        for row in rows
        if (requests := waiting.get(row.document_id, [])) and is_stuck(requests[0]["created_at"], now, stuck_after, timezone)
    ]


def _stuck_incident(
    document_id: uuid.UUID, waiting_on: tuple[str, ...], since: datetime | None, stuck_after: int, requests: list[uuid.UUID]
) -> Incident:
    """A stuck document's fix names its waiting request (the first, when a step waits on several)."""
    request = requests[0] if requests else None
    reassign = f"paraaf document reassign {request or 'REQUEST'} --to PERSON --reason '...'"
    return Incident(
        f"stuck:{document_id}",
        "stuck",
        document_id,
        f"waiting more than {stuck_after} working days on {', '.join(waiting_on) or 'nobody'}",
        since,
        f"paraaf trail {document_id}; then {reassign}, or paraaf document withdraw {document_id} --reason '...'",
        request,
    )


def dead_letter_incidents(depths: Iterable[tuple[str, int | None]]) -> list[Incident]:
    """One incident per dead-letter or holding queue that holds messages."""
    return [
        Incident(
            f"dead_letters:{queue}",
            "dead_letters",
            None,
            f"{count} message(s) in {queue}",
            None,
            f"paraaf dlq show {queue.removesuffix('.dlq')} ID; then paraaf dlq replay or drop",
        )
        for queue, count in depths
        if count
    ]


def why_not_dismissed(incident: Incident) -> str | None:
    """Why this incident cannot be dismissed, or None. A queue's dead letters are replayed or dropped (each
    audited): dismissing `dead_letters:<queue>` would hide the queue's later messages from the list for good."""
    if incident.kind == "dead_letters":
        return f"dead letters are not dismissed but replayed or dropped, each audited: {incident.fix}"
    return None


async def dismissed(conn: asyncpg.Connection, org: str | None = None) -> set[str]:
    """The incidents dismissed (of ``org``'s, when given: a portal operator dismisses only her own org's)."""
    rows = await conn.fetch(
        "SELECT (payload::jsonb)->'event'->>'incident' AS incident FROM audit.log"
        " WHERE routing_key = 'incident.dismissed' AND ($1::text IS NULL OR org = $1)",
        org,
    )
    return {r["incident"] for r in rows}


async def read_incidents(
    conn: asyncpg.Connection, now: datetime, *, stuck_after: int, timezone: str, org: str | None = None
) -> list[Incident]:
    """Everything the database says needs a person, dismissed or not (dead letters come from the broker); of
    ``org``'s documents when given (the portal's operators), of every org's otherwise (the administrator's CLI)."""
    return [
        *await _unresolved(conn, org),
        *await _undelivered(conn, org),
        *await _unstamped(conn, org),
        *await _stuck(conn, now, stuck_after, timezone, org),
        *await _abandoned(conn, org),
    ]


def open_incidents(incidents: Iterable[Incident], dismissed_ids: set[str]) -> list[Incident]:
    """The incidents not dismissed, oldest first, each once."""
    unique = {i.id: i for i in incidents if i.id not in dismissed_ids}
    return sorted(unique.values(), key=lambda i: (i.since is None, i.since or datetime.min, i.id))


async def incidents_now(
    conn: asyncpg.Connection,
    now: datetime,
    queues: Iterable[tuple[str, int | None]],
    *,
    stuck_after: int,
    timezone: str,
    org: str | None = None,
) -> list[Incident]:
    """What needs a person now: the database's incidents and the ``queues`` (name, depth) that hold messages, less
    those dismissed, oldest first. `paraaf incidents` prints it and the operators' page shows it (``org``'s), so the
    two cannot disagree; call it in one read-only transaction, so the list is one moment across the schemas."""
    found = await read_incidents(conn, now, stuck_after=stuck_after, timezone=timezone, org=org)
    return open_incidents([*found, *dead_letter_incidents(queues)], await dismissed(conn, org))
