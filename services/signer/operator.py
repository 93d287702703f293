"""What the operators' pages read (/p/ops/...): her org's documents with the
filters of ``paraaf documents``, a document's timeline from the audit log as
``paraaf trail`` tells it, and what one live stream shows of each new entry.

The queries and rules are the CLI's (services/ops): one meaning of "stuck",
and per event the sentence ``paraaf trail`` prints, in her language
(event_words.py), which never holds a title. Titles pass the
visibility policy for the operator looking (shared/visibility.py): she sees
that a confidential or shielded document exists and what happened to it,
and its title only where she submitted it or was asked to sign it.
"""

import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from services.ops.documents import DocumentRow, Filters, listed, read_documents, read_trail
from services.ops.rules import HIDDEN_TITLE, local_time, topic_matches
from services.signer.event_words import describe
from services.signer.live import LogEntry
from services.signer.portal import Person, PortalReader
from services.signer.portal_texts import portal_texts
from shared.visibility import Access, DocumentFacts, access

__all__ = ["LIST_LIMIT", "SCAN_LIMIT", "LiveFilters", "LiveView", "OperatorReader", "Timeline", "TimelineStep", "tone", "viewer_title"]

LIST_LIMIT = 500  # rows a page shows
SCAN_LIMIT = 5000  # newest documents a page looks through (a city signs ~97,000 a year: narrow by filters)
_FACTS_KEPT = 2000  # documents a stream remembers what it looked up of
_FACTS_SECONDS = 60.0  # ... and for how long


def viewer_title(person: Person, record: Mapping[str, Any]) -> str:
    """A listed document's title as ``person`` may see it."""
    facts = DocumentFacts(
        org=record["org"], submitter=record["submitter"] or "", asked=frozenset(record["asked"]), group=record["group_key"],
        confidential=record["confidential"], shielded=record["shielded"],
    )
    return record["title"] if access(person.viewer, facts) >= Access.FULL else HIDDEN_TITLE


def tone(routing_key: str) -> str:
    """How a step looks on the timeline: ``bad`` when something was refused or failed, ``good`` when it moved on."""
    if routing_key.endswith(("declined", "failed", "rejected", "unresolved", "dropped", "withdrawn")):
        return "bad"
    return "good" if routing_key in ("signature.signed", "document.completed") else ""


@dataclass(frozen=True)
class TimelineStep:
    at: str  # on the organisation's wall clock
    event: str  # the routing key
    what: str  # who did what in her language (event_words.describe), never a title
    tone: str


@dataclass(frozen=True)
class Timeline:
    document_id: UUID
    title: str | None  # None: the router never took the document on
    status: str | None
    confidential: bool
    steps: list[TimelineStep]


class OperatorReader:
    """Read-only queries behind the operator's document pages, for one signed-in operator."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def documents(
        self, person: Person, filters: Filters, now: datetime, *, stuck_after: int, timezone: str
    ) -> tuple[list[DocumentRow], int, bool]:
        """Her org's documents that pass ``filters``, newest first (at most LIST_LIMIT); how many of the SCAN_LIMIT
        newest passed; and whether there were more than SCAN_LIMIT to look through."""
        async with self._conn.transaction(isolation="repeatable_read", readonly=True):
            records = await read_documents(self._conn, filters, now, org=person.org, newest=SCAN_LIMIT)
        rows = listed(records, filters, now, stuck_after=stuck_after, timezone=timezone, title=lambda r: viewer_title(person, r))
        return rows[::-1][:LIST_LIMIT], len(rows), len(records) >= SCAN_LIMIT

    async def timeline(self, person: Person, document_id: UUID, timezone: str) -> Timeline | None:
        """Every step of the document in the audit log, in order; None when her org knows no such document."""
        async with self._conn.transaction(isolation="repeatable_read", readonly=True):
            trail = await read_trail(self._conn, document_id, person.org)
            document = await PortalReader(self._conn).document(person.org, document_id)
        if trail is None or (document is not None and document.seen_by(person) == Access.NONE):
            return None
        words = portal_texts(person.language)
        steps = [
            TimelineStep(local_time(event["occurred_at"], timezone), key, describe(key, event, words), tone(key))
            for key, event in trail.steps
        ]
        if document is None:
            return Timeline(document_id, None, None, False, steps)
        title = document.title if document.seen_by(person) >= Access.FULL else HIDDEN_TITLE
        return Timeline(document_id, title, document.status, document.facts.confidential, steps)


@dataclass(frozen=True)
class LiveFilters:
    """``paraaf tail``'s filters: routing keys as a topic pattern, a document (its id or the start of it), a source."""

    type: str = "#"
    document: str = ""
    source: str = ""


@dataclass(frozen=True)
class _Known:
    title: str  # "" until the router took the document on
    source: str | None
    ref: str | None
    linked: bool = False  # intake or the router knows it (a sign-in mail's correlation id names no document)


class LiveView:
    """What one operator's stream shows of the log's entries: her org's, through her filters, titles by the policy.

    What it learns of a document is kept for up to a minute, so a burst of one document's events costs one
    lookup; a directory change (a group made shielded, a person moved) reaches an open stream within that minute."""

    def __init__(self, person: Person, filters: LiveFilters, timezone: str, pool: asyncpg.Pool) -> None:
        self._person, self._filters, self._timezone, self._pool = person, filters, timezone, pool
        self._words = portal_texts(person.language)
        self._known: dict[UUID, _Known] = {}
        self._known_since = time.monotonic()

    async def shown(self, entry: LogEntry) -> dict[str, Any] | None:
        """The entry as the stream sends it, or None when it is not hers to see or her filters leave it out."""
        if entry.org != self._person.org or not topic_matches(self._filters.type or "#", entry.routing_key):
            return None
        document = str(entry.document_id or "")
        if self._filters.document and not document.startswith(self._filters.document.lower()):
            return None
        known = await self._facts(entry) if entry.document_id else _Known("", None, None)
        if self._filters.source and known.source != self._filters.source:
            return None
        event = entry.event
        return {
            "seq": entry.seq, "at": local_time(event["occurred_at"], self._timezone) if event.get("occurred_at") else "",
            "type": entry.routing_key, "document": document, "title": "" if known.title == HIDDEN_TITLE else known.title,
            "hidden": known.title == HIDDEN_TITLE, "source": known.source, "ref": known.ref, "linked": known.linked,
            "what": describe(entry.routing_key, event, self._words), "tone": tone(entry.routing_key),
        }

    async def _facts(self, entry: LogEntry) -> _Known:
        assert entry.document_id is not None
        if len(self._known) >= _FACTS_KEPT or time.monotonic() - self._known_since > _FACTS_SECONDS:
            self._known, self._known_since = {}, time.monotonic()
        if (kept := self._known.get(entry.document_id)) is not None:
            return kept
        async with self._pool.acquire() as conn:
            document = await PortalReader(conn).document(self._person.org, entry.document_id)
            sent = await conn.fetchrow(
                "SELECT source, external_ref FROM intake.documents WHERE document_id = $1 AND org = $2",
                entry.document_id, self._person.org,
            )
        source = sent["source"] if sent else entry.event.get("source")
        ref = sent["external_ref"] if sent else entry.event.get("external_ref")
        if document is None:  # not routed (yet): nothing to decide a title by, so none; asked again next time
            return _Known("", source, ref, linked=sent is not None)
        title = document.title if document.seen_by(self._person) >= Access.FULL else HIDDEN_TITLE
        self._known[entry.document_id] = kept = _Known(title, source, ref, linked=True)
        return kept
