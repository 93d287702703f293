"""Documents as an operator lists them (``paraaf documents``) and their trails
(``paraaf trail``), read across schemas with the administrator's database URL —
and by the portal's operator pages (services/signer/operator.py) with the
signer's read-only grants, one org at a time: the router owns a document's
state and who it waits on, intake its source and reference, the audit log every
step. Read-only; titles a viewer may not see are replaced before anything
leaves this module (any operator's view by default, or the caller's ``title``).
"""

import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from services.ops.rules import is_stuck, shown_title

__all__ = [
    "DocumentRow", "Filters", "Title", "Trail", "listed", "operator_title", "read_documents", "read_trail", "resolve",
]

Title = Callable[[Mapping[str, Any]], str]  # a listed document's title as the viewer may see it

_DOCUMENTS = """
SELECT i.document_id, i.org, i.title, i.department, i.status, i.confidential, i.group_key, i.created_at,
       i.submitted_by->>'id' AS submitter, coalesce(g.shielded, false) AS shielded, d.source, d.external_ref,
       coalesce((SELECT array_agg(DISTINCT r.person_id) FROM router.requests r WHERE r.document_id = i.document_id),
                '{}') AS asked,
       (SELECT min(r.created_at) FROM router.requests r
         WHERE r.document_id = i.document_id AND r.step = i.current_step) AS waiting_since,
       (SELECT coalesce(jsonb_agg(jsonb_build_object('person', r.person, 'on_behalf_of', r.on_behalf_of)
                                  ORDER BY r.created_at), '[]'::jsonb)
          FROM router.requests r WHERE r.document_id = i.document_id AND r.status = 'pending') AS pending
  FROM router.instances i
  LEFT JOIN intake.documents d ON d.document_id = i.document_id
  LEFT JOIN router.groups g ON g.org = i.org AND g.key = i.group_key
 WHERE ($1::text IS NULL OR d.source = $1) AND ($2::text IS NULL OR d.external_ref = $2)
   AND ($3::text IS NULL OR i.department = $3) AND ($4::timestamptz IS NULL OR i.created_at < $4)
   AND ($5::text IS NULL OR i.org = $5) AND ($6::text IS NULL OR i.status = $6)
 ORDER BY i.created_at DESC, i.document_id DESC
 LIMIT $7
"""
_ROUTER_STATUS = {"waiting": "active", "stuck": "active"}  # stuck is worked out from the age of the current step


@dataclass(frozen=True)
class Filters:
    status: str | None = None  # one of rules.STATUSES
    source: str | None = None
    ref: str | None = None
    department: str | None = None
    waiting_on: str | None = None  # a person's id, or part of her name
    older_than: timedelta | None = None


@dataclass(frozen=True)
class DocumentRow:
    document_id: uuid.UUID
    source: str | None
    ref: str | None
    title: str  # already "(confidential)" where an operator may not see it
    department: str | None
    status: str  # waiting, stuck, completed, declined or withdrawn
    waiting_on: tuple[str, ...]
    created_at: datetime
    waiting_since: datetime | None

    def as_json(self, now: datetime) -> dict[str, Any]:
        return {
            "document_id": str(self.document_id), "source": self.source, "external_ref": self.ref, "title": self.title,
            "department": self.department, "status": self.status, "waiting_on": list(self.waiting_on),
            "created_at": self.created_at.isoformat(), "age_seconds": int((now - self.created_at).total_seconds()),
            "waiting_since": self.waiting_since.isoformat() if self.waiting_since else None,
        }


async def read_documents(
    conn: asyncpg.Connection, filters: Filters, now: datetime, org: str | None = None, newest: int | None = None
) -> list[asyncpg.Record]:
    """The documents the database-side filters let through (source, reference, department, age, status), oldest
    first; of ``org`` or (None: the administrator's view) of every org; only the ``newest`` when given."""
    before = now - filters.older_than if filters.older_than else None
    status = _ROUTER_STATUS.get(filters.status, filters.status) if filters.status else None
    rows = await conn.fetch(_DOCUMENTS, filters.source, filters.ref, filters.department, before, org, status, newest)
    return rows[::-1]


def operator_title(record: Mapping[str, Any]) -> str:
    """The title as any operator may see it: hidden when the document is confidential or shielded."""
    return shown_title(record["title"], confidential=record["confidential"], shielded=record["shielded"])


def _waiting_on(pending: list[dict[str, Any]]) -> tuple[str, ...]:
    def who(request: dict[str, Any]) -> str:
        name = request["person"].get("name") or request["person"].get("id")
        behalf = request.get("on_behalf_of")
        return f"{name} (for {behalf.get('name') or behalf.get('id')})" if behalf else str(name)

    return tuple(who(r) for r in pending)


def _ids(pending: list[dict[str, Any]]) -> set[str]:
    return {str(r["person"].get(key) or "").lower() for r in pending for key in ("id", "name")}


def _row(record: asyncpg.Record, now: datetime, stuck_after: int, timezone: str, title: Title) -> DocumentRow:
    status = "waiting" if record["status"] == "active" else record["status"]
    if status == "waiting" and is_stuck(record["waiting_since"], now, stuck_after, timezone):
        status = "stuck"
    return DocumentRow(
        record["document_id"], record["source"], record["external_ref"], title(record),
        record["department"], status, _waiting_on(record["pending"]), record["created_at"], record["waiting_since"],
    )


def _wanted(row: DocumentRow, record: asyncpg.Record, filters: Filters) -> bool:
    if filters.status == "waiting" and row.status not in ("waiting", "stuck"):
        return False  # a stuck document is still waiting
    if filters.status not in (None, "waiting") and row.status != filters.status:
        return False
    if filters.waiting_on:
        wanted = filters.waiting_on.lower()
        return any(wanted == known or (len(wanted) > 2 and wanted in known) for known in _ids(record["pending"]))
    return True


def listed(
    records: list[Any], filters: Filters, now: datetime, *, stuck_after: int, timezone: str, title: Title = operator_title
) -> list[DocumentRow]:
    """The rows ``paraaf documents`` shows: status worked out (stuck after ``stuck_after`` working days), filtered;
    each title as ``title`` lets the viewer see it (the operator's page asks the visibility policy per person)."""
    rows = [(_row(r, now, stuck_after, timezone, title), r) for r in records]
    return [row for row, record in rows if _wanted(row, record, filters)]


async def resolve(conn: asyncpg.Connection, document: str) -> uuid.UUID | None:
    """A document id, or ``source/ref`` as the sending system knows it; None when neither names a document."""
    try:
        return uuid.UUID(document)
    except ValueError:
        pass
    source, _, ref = document.partition("/")
    return await conn.fetchval(
        "SELECT document_id FROM intake.documents WHERE source = $1 AND external_ref = $2", source, ref
    ) if ref else None


@dataclass(frozen=True)
class Trail:
    document_id: uuid.UUID
    title: str  # "(confidential)" unless the router knows the document is neither confidential nor shielded
    steps: list[tuple[str, dict[str, Any]]]  # (routing key, event), in the audit log's order


async def read_trail(conn: asyncpg.Connection, document_id: uuid.UUID, org: str | None = None) -> Trail | None:
    """Every audit-log entry of the document in order (of ``org``'s, when given); None when neither the log nor
    the router knows it."""
    entries = await conn.fetch(
        "SELECT payload FROM audit.log WHERE document_id = $1 AND ($2::text IS NULL OR org = $2) ORDER BY seq",
        document_id, org,
    )
    facts = await conn.fetchrow(
        "SELECT i.title, i.confidential, coalesce(g.shielded, false) AS shielded FROM router.instances i"
        " LEFT JOIN router.groups g ON g.org = i.org AND g.key = i.group_key"
        " WHERE i.document_id = $1 AND ($2::text IS NULL OR i.org = $2)",
        document_id, org,
    )
    if not entries and facts is None:
        return None
    steps = [(p["routing_key"], p["event"]) for p in (json.loads(e["payload"]) for e in entries)]
    title = shown_title(facts["title"], confidential=facts["confidential"], shielded=facts["shielded"]) if facts else "(not routed)"
    return Trail(document_id, title, steps)
