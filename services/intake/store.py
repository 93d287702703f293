"""Intake's tables behind one interface, :class:`IntakeStore`: the sources
allowed to submit, submitted documents, refused submissions, the PDFs it
keeps in the blob store, and the messages sent with each change.
:class:`PostgresIntakeStore` keeps them in the intake and blobs schemas,
inside the caller's transaction; tests use an in-memory fake of the same
interface (tests/support/fakes.py)."""

import json
from dataclasses import dataclass, replace
from typing import Any, Protocol
from uuid import UUID

import asyncpg
from pydantic import BaseModel

from services.intake.sources import SourcePolicy
from shared import blobs
from shared.contract import Outcome
from shared.events import StepSpec
from shared.names import DLX_EXCHANGE, REJECTED_QUEUE
from shared.outbox import Outbox, TransactionStore

__all__ = ["Document", "IntakeStore", "PostgresIntakeStore", "Rejection"]


@dataclass(frozen=True)
class Document:
    """A submission intake accepted, and where it stands."""

    document_id: UUID
    org: str
    source: str
    external_ref: str
    title: str
    submitted_by: str
    filename: str
    pdf_sha256: str
    flow: str | None = None
    steps: tuple[StepSpec, ...] | None = None
    confidential: bool = False
    language: str = "nl"
    metadata: dict[str, Any] | None = None
    status: str = "submitted"
    reason: str | None = None
    signed_sha256: str | None = None


@dataclass(frozen=True)
class Rejection:
    id: UUID
    org: str
    source: str
    external_ref: str | None
    code: str
    reason: str
    document_id: UUID | None = None


class IntakeStore(Protocol):
    async def publish(self, message: BaseModel) -> None: ...
    async def keep_refused(self, rejection_id: UUID, original: bytes, headers: dict[str, str]) -> None: ...

    async def source_policy(self, source: str, *, lock_ref: str | None = None) -> SourcePolicy | None: ...
    async def upsert_source(self, policy: SourcePolicy) -> bool: ...
    async def sources(self) -> list[SourcePolicy]: ...
    async def delete_source(self, source: str) -> bool: ...

    async def put_pdf(self, data: bytes) -> str: ...
    async def pdf(self, digest: str) -> bytes: ...
    async def register_version(self, document_id: UUID, revision: int, org: str, digest: str) -> None: ...
    async def version_digests(self, document_id: UUID, org: str) -> list[str]: ...

    async def find_document(self, org: str, source: str, external_ref: str, *, locked: bool = False) -> Document | None: ...
    async def insert_document(self, document: Document) -> None: ...
    async def add_document(self, document: Document, pdf: bytes) -> Document | None: ...
    async def complete(self, document_id: UUID, org: str, signed_sha256: str) -> tuple[bytes | None, Document | None]: ...
    async def set_status(
        self, document_id: UUID, status: str, reason: str | None = None, *, signed_sha256: str | None = None
    ) -> Document | None: ...
    async def insert_rejection(self, rejection: Rejection) -> None: ...

    async def set_webhook(self, source: str, url: str | None, secret: str | None) -> None: ...
    async def webhook_url(self, source: str) -> str | None: ...
    async def redeliver(self, source: str) -> int: ...




def _reference_lock(source: str, external_ref: str) -> str:
    """What a source's reference is locked by (a source submits for one org only, so the org adds nothing)."""
    return json.dumps(["intake.submission", source, external_ref])


def _has_webhook(row: str) -> str:
    """Whether the source of a sources or documents row (named ``row`` in the query) has a webhook, a column."""
    return f"EXISTS (SELECT 1 FROM intake.webhooks w WHERE w.source = {row}.source) AS has_webhook"


# A new document of a reference, or the one it has (then nothing is written).
_ADD_DOCUMENT = (
    "WITH existing AS (SELECT * FROM intake.documents WHERE org = $2 AND source = $3 AND external_ref = $4),"
    " blob AS (INSERT INTO blobs.blob (sha256, size, data) SELECT $13, $14, $15 WHERE NOT EXISTS (SELECT FROM existing)"
    " ON CONFLICT DO NOTHING),"
    " document AS (INSERT INTO intake.documents (document_id, org, source, external_ref, title, flow, steps,"
    " submitted_by, confidential, filename, language, metadata, pdf_sha256)"
    " SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13 WHERE NOT EXISTS (SELECT FROM existing)),"
    " version AS (INSERT INTO blobs.versions (document_id, revision, org, sha256) SELECT $1, 0, $2, $13"
    " WHERE NOT EXISTS (SELECT FROM existing) ON CONFLICT DO NOTHING)"
    " SELECT * FROM existing"
)

_COMPLETE = (
    "WITH version AS (SELECT b.data FROM blobs.versions v JOIN blobs.blob b USING (sha256)"
    " WHERE v.document_id = $1 AND v.org = $2 AND v.sha256 = $3),"
    " moved AS (UPDATE intake.documents d SET status = 'completed', reason = NULL, signed_sha256 = $3, updated_at = now()"
    f" WHERE document_id = $1 AND EXISTS (SELECT 1 FROM version) RETURNING *, {_has_webhook('d')})"
    " SELECT (SELECT data FROM version) AS pdf, moved.* FROM (SELECT 1) AS one LEFT JOIN moved ON true"
)


def _policy(row: asyncpg.Record) -> SourcePolicy:
    return SourcePolicy(
        source=row["source"],
        org=row["org"],
        flows=frozenset(row["flows"]) if row["flows"] is not None else None,
        submitters=frozenset(row["submitters"]) if row["submitters"] is not None else None,
        ad_hoc_steps=row["ad_hoc_steps"],
    )


def _document(row: asyncpg.Record) -> Document:
    fields = {k: row[k] for k in Document.__dataclass_fields__ if k != "steps"}
    steps = tuple(StepSpec.model_validate(s) for s in row["steps"]) if row["steps"] else None
    return replace(Document(**fields), steps=steps)


class PostgresIntakeStore(TransactionStore):
    """The intake and blobs schemas, through the connection of the transaction a message runs in.

    Whether a source has a webhook comes along with the reads of its policy and of its documents' changes, so an
    outcome for a source without one costs no statement to find that out (most sources have none)."""

    def __init__(self, conn: asyncpg.Connection, outbox: Outbox) -> None:
        super().__init__(conn, outbox)
        self._webhook_of: dict[str, bool] = {}  # by source, as read in this transaction

    def _saw(self, row: asyncpg.Record) -> asyncpg.Record:
        self._webhook_of[row["source"]] = row["has_webhook"]
        return row

    async def publish(self, message: BaseModel) -> None:
        """Send ``message`` with the transaction; an outcome for a source with a webhook is also kept for its sender."""
        await super().publish(message)
        if isinstance(message, Outcome) and self._webhook_of.get(message.source, True):
            await self._conn.execute(
                "INSERT INTO intake.webhook_deliveries (delivery_id, source, event, document_id, org, body)"
                " SELECT $1, w.source, $3, $4, s.org, $5 FROM intake.webhooks w JOIN intake.sources s USING (source)"
                " WHERE w.source = $2 ON CONFLICT DO NOTHING",
                message.outcome_id, message.source, message.routing_key, message.document_id, message.model_dump_json().encode(),
            )

    async def set_webhook(self, source: str, url: str | None, secret: str | None) -> None:
        """Deliver ``source``'s outcomes to ``url`` signed with ``secret`` from now on; None: no longer by webhook."""
        if url is None:
            await self._conn.execute("DELETE FROM intake.webhooks WHERE source = $1", source)
            await self._conn.execute("DELETE FROM intake.webhook_deliveries WHERE source = $1 AND state <> 'delivered'", source)
            return
        await self._conn.execute(
            "INSERT INTO intake.webhooks (source, url, secret) VALUES ($1, $2, $3)"
            " ON CONFLICT (source) DO UPDATE SET url = $2, secret = coalesce($3, intake.webhooks.secret)",
            source, url, secret,
        )

    async def webhook_url(self, source: str) -> str | None:
        return await self._conn.fetchval("SELECT url FROM intake.webhooks WHERE source = $1", source)

    async def redeliver(self, source: str) -> int:
        """Try the deliveries given up on again, from now, each for another PARAAF_WEBHOOK_RETRY_HOURS."""
        done = await self._conn.execute(
            "UPDATE intake.webhook_deliveries SET state = 'pending', attempts = 0, created_at = now(), next_attempt_at = now(),"
            " redelivered = true WHERE source = $1 AND state = 'abandoned'",
            source,
        )
        return int(done.split()[-1])

    async def keep_refused(self, rejection_id: UUID, original: bytes, headers: dict[str, str]) -> None:
        """The refused original, byte for byte, to queue intake.rejected (with the transaction)."""
        await self._outbox.add_raw(self._conn, DLX_EXCHANGE, REJECTED_QUEUE, rejection_id, original, headers)

    async def source_policy(self, source: str, *, lock_ref: str | None = None) -> SourcePolicy | None:
        """The source's policy; with ``lock_ref``, that reference of the source locked for the rest of the transaction
        too (see :meth:`find_document`), with the same statement."""
        if lock_ref is None:
            row = await self._conn.fetchrow(f"SELECT *, {_has_webhook('s')} FROM intake.sources s WHERE source = $1", source)
        else:
            row = await self._conn.fetchrow(
                f"SELECT *, {_has_webhook('s')}, pg_advisory_xact_lock(hashtextextended($2, 0)) IS NULL AS locked"
                " FROM intake.sources s WHERE source = $1",
                source, _reference_lock(source, lock_ref),
            )
        return _policy(self._saw(row)) if row else None

    async def upsert_source(self, policy: SourcePolicy) -> bool:
        """Register or change a source; True when it is new."""
        return await self._conn.fetchval(
            "INSERT INTO intake.sources (source, org, flows, submitters, ad_hoc_steps) VALUES ($1, $2, $3, $4, $5)"
            " ON CONFLICT (source) DO UPDATE SET org = $2, flows = $3, submitters = $4, ad_hoc_steps = $5, updated_at = now()"
            " RETURNING xmax = 0",
            policy.source,
            policy.org,
            sorted(policy.flows) if policy.flows is not None else None,
            sorted(policy.submitters) if policy.submitters is not None else None,
            policy.ad_hoc_steps,
        )

    async def sources(self) -> list[SourcePolicy]:
        return [_policy(r) for r in await self._conn.fetch("SELECT * FROM intake.sources ORDER BY source")]

    async def delete_source(self, source: str) -> bool:
        return bool(await self._conn.fetchval("DELETE FROM intake.sources WHERE source = $1 RETURNING true", source))

    async def put_pdf(self, data: bytes) -> str:
        return await blobs.put_blob(self._conn, data)

    async def pdf(self, digest: str) -> bytes:
        return await blobs.get_blob(self._conn, digest)

    async def register_version(self, document_id: UUID, revision: int, org: str, digest: str) -> None:
        await blobs.register_version(self._conn, document_id, revision, org, digest)

    async def version_digests(self, document_id: UUID, org: str) -> list[str]:
        return await blobs.version_digests(self._conn, document_id, org)

    async def find_document(self, org: str, source: str, external_ref: str, *, locked: bool = False) -> Document | None:
        """The document of this reference; the reference is locked for the rest of the transaction (``locked``: it was,
        by :meth:`source_policy`), so a copy of the same submission handled at the same moment (by this intake or
        another process of it) waits, then finds it."""
        if not locked:
            await self._conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", _reference_lock(source, external_ref))
        row = await self._conn.fetchrow(
            "SELECT * FROM intake.documents WHERE org = $1 AND source = $2 AND external_ref = $3", org, source, external_ref
        )
        return _document(row) if row else None

    async def insert_document(self, document: Document) -> None:
        d = document
        await self._conn.execute(
            "INSERT INTO intake.documents (document_id, org, source, external_ref, title, flow, steps, submitted_by,"
            " confidential, filename, language, metadata, pdf_sha256) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
            d.document_id, d.org, d.source, d.external_ref, d.title, d.flow,
            [s.model_dump() for s in d.steps] if d.steps else None,
            d.submitted_by, d.confidential, d.filename, d.language, d.metadata or {}, d.pdf_sha256,
        )

    async def add_document(self, document: Document, pdf: bytes) -> Document | None:
        """``pdf`` kept in the blob store, the document, and ``pdf`` as its revision 0, with one statement; unless its
        reference already has a document (lock the reference first, as :meth:`find_document` says): then nothing is
        added and that document comes back."""
        d = document
        row = await self._conn.fetchrow(
            _ADD_DOCUMENT,
            d.document_id, d.org, d.source, d.external_ref, d.title, d.flow,
            [s.model_dump() for s in d.steps] if d.steps else None,
            d.submitted_by, d.confidential, d.filename, d.language, d.metadata or {}, d.pdf_sha256, len(pdf), pdf,
        )
        return _document(row) if row else None

    async def set_status(
        self, document_id: UUID, status: str, reason: str | None = None, *, signed_sha256: str | None = None
    ) -> Document | None:
        """Move a document to ``status``; None when intake does not know it."""
        row = await self._conn.fetchrow(
            "UPDATE intake.documents d SET status = $2, reason = $3, signed_sha256 = coalesce($4, signed_sha256),"
            f" updated_at = now() WHERE document_id = $1 RETURNING *, {_has_webhook('d')}",
            document_id, status, reason, signed_sha256,
        )
        return _document(self._saw(row)) if row else None

    async def complete(self, document_id: UUID, org: str, signed_sha256: str) -> tuple[bytes | None, Document | None]:
        """Move the document to completed with ``signed_sha256``, a version of it, and read that version's PDF, in one
        statement: (None, None) when it is no version of the document in ``org`` (nothing changes); (the PDF, None)
        when intake does not know the document."""
        row = await self._conn.fetchrow(_COMPLETE, document_id, org, signed_sha256)
        if row["pdf"] is None:
            return None, None
        return row["pdf"], _document(self._saw(row)) if row["document_id"] is not None else None

    async def insert_rejection(self, rejection: Rejection) -> None:
        r = rejection
        await self._conn.execute(
            "INSERT INTO intake.rejections (id, org, source, external_ref, document_id, code, reason) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            r.id, r.org, r.source, r.external_ref, r.document_id, r.code, r.reason,
        )
