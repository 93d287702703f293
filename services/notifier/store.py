"""The notifier's tables behind one interface, :class:`NotifierStore`: the mail
spool, the reminder schedule (with the requests and documents that ended),
the moves waiting to be told, and the messages sent with each change.
:class:`PostgresNotifierStore` keeps them in the notifier's schema, inside
the caller's transaction; tests use an in-memory fake of the same interface
(tests/support/fakes/notifier.py)."""

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol
from uuid import UUID

import asyncpg
import structlog
from pydantic import BaseModel

from services.notifier.domain import Move, Schedule
from services.notifier.render import Mail
from shared.events import PersonRef
from shared.outbox import Outbox, OutboxRow, TransactionStore, gathered
from shared.topology import DLX, NOTIFIER_EVENTS

__all__ = [
    "Directory", "NotifierStore", "NotifierTransactions", "PostgresNotifierStore", "SpooledMail", "Transaction", "took_queued",
]


@dataclass(frozen=True)
class SpooledMail:
    """One mail in the spool, keyed by the intent (a command's or an event's id) that asked for it.
    A link mail holds no link: ``link_kind`` says which link the sender asks the signer for as it sends."""

    mail_id: UUID
    org: str
    document_id: UUID
    kind: str
    recipient: str
    content: Mail  # its text is cleared once the mail is sent, failed or cancelled
    request_id: UUID | None = None  # of a signing-link mail; of a sign-in mail, the sign-in attempt
    related_documents: tuple[UUID, ...] = ()  # of a notice about several documents
    link_kind: str | None = None  # signing | download | sign_in
    link_person: str | None = None  # whose download link
    created_at: datetime | None = None
    status: str = "pending"  # pending | sent | failed | cancelled
    attempts: int = 0
    last_error: str | None = None
    next_attempt_at: datetime | None = None
    sent_at: datetime | None = None

    @property
    def documents(self) -> tuple[UUID, ...]:
        """The documents whose trail shows this mail."""
        return self.related_documents or (self.document_id,)


class NotifierStore(Protocol):
    async def publish(self, message: BaseModel) -> None: ...
    async def keep_dead_letter(self, mail_id: UUID, body: bytes, headers: dict[str, str]) -> None: ...

    # The mail spool.
    async def queue_mail(self, mail: SpooledMail, now: datetime) -> bool: ...
    async def mail(self, mail_id: UUID) -> SpooledMail | None: ...
    async def claim_due(self, now: datetime, lease_until: datetime, limit: int, held: Sequence[UUID] = ()) -> list[SpooledMail]: ...
    async def release(self, mail_ids: Sequence[UUID], at: datetime) -> None: ...
    async def renew_lease(self, mail: SpooledMail, until: datetime) -> None: ...
    async def mark_sent(self, mail_ids: Sequence[UUID], now: datetime, told: Sequence[BaseModel] = ()) -> None: ...
    async def mark_retry(self, mail_id: UUID, error: str, next_attempt_at: datetime) -> None: ...
    async def mark_failed(self, mail_id: UUID, error: str) -> None: ...
    async def mark_cancelled(self, mail_id: UUID, reason: str) -> None: ...

    # Requests, their reminders, and documents that ended.
    async def document_ended(self, document_id: UUID) -> bool: ...
    async def open_schedule(self, schedule: Schedule) -> None: ...
    async def schedule(self, request_id: UUID, *, lock: bool = False) -> Schedule | None: ...
    async def schedule_for_mail(self, request_id: UUID, document_id: UUID, opening: Schedule | None) -> tuple[bool, Schedule | None]: ...
    async def schedule_for_request(
        self, opening: Schedule, recipient: PersonRef, title: str, mail: SpooledMail, now: datetime
    ) -> tuple[bool, Schedule | None, str | None, bool]: ...
    async def close_request(self, request_id: UUID, org: str, document_id: UUID, closed_by: str, now: datetime) -> None: ...
    async def end_document(self, document_id: UUID, org: str, status: str, now: datetime) -> None: ...
    async def due_reminders(self, now: datetime, limit: int) -> list[Schedule]: ...
    async def reminder_issued(self, request_id: UUID, number: int, next_at: datetime | None, now: datetime) -> None: ...

    # Moves away from an absent person.
    async def record_move(self, move: Move) -> None: ...
    async def moves_to_tell(self, moved_before: datetime) -> list[tuple[str, str]]: ...
    async def waiting_moves(self, org: str, person_id: str) -> list[Move]: ...
    async def mark_moves_told(self, event_ids: Sequence[UUID], mail_id: UUID) -> None: ...


Transaction = Callable[[], AbstractAsyncContextManager[NotifierStore]]


def _mail(row: asyncpg.Record) -> SpooledMail:
    return SpooledMail(
        mail_id=row["mail_id"],
        org=row["org"],
        document_id=row["document_id"],
        kind=row["kind"],
        recipient=row["recipient"],
        content=Mail(row["subject"], row["text_body"] or "", row["html_body"] or ""),
        request_id=row["request_id"],
        related_documents=tuple(row["related_documents"] or ()),
        link_kind=row["link_kind"],
        link_person=row["link_person"],
        created_at=row["created_at"],
        status=row["status"],
        attempts=row["attempts"],
        last_error=row["last_error"],
        next_attempt_at=row["next_attempt_at"],
        sent_at=row["sent_at"],
    )


def _schedule(row: asyncpg.Record) -> Schedule:
    fields = ("request_id", "org", "document_id", "requested_at", "due_at", "next_at", "sent", "status", "closed_by")
    return Schedule(**{name: row[name] for name in fields})


def _move(row: asyncpg.Record) -> Move:
    return Move(
        event_id=row["event_id"],
        org=row["org"],
        document_id=row["document_id"],
        from_person=PersonRef.model_validate(row["from_person"]),
        to_person=PersonRef.model_validate(row["to_person"]),
        title=row["title"],
        reason=row["reason"],
        moved_at=row["moved_at"],
    )


@dataclass
class Directory:
    """Whether the notifier may read the directory's mail preferences, as the last read found (one per process).
    While that is in doubt a read goes in a savepoint, so that a refusal does not abort the message's transaction;
    once a read succeeded, without (a savepoint costs two round trips more than the read)."""

    readable: bool = False


_UNREADABLE = (asyncpg.InsufficientPrivilegeError, asyncpg.UndefinedTableError, asyncpg.UndefinedColumnError)

# Whether the document ended, and the request's schedule, locked: opened first ($8) unless the document ended or the
# request is followed (or closed) already. A row opened here is this transaction's alone; one that was there is locked.
_SCHEDULE_FOR_MAIL = (
    "WITH ended AS (SELECT EXISTS (SELECT 1 FROM notifier.ended_documents WHERE document_id = $2) AS ended),"
    " opened AS (INSERT INTO notifier.reminders (request_id, org, document_id, requested_at, due_at, next_at, status, updated_at)"
    "  SELECT $1, $3, $2, $4, $5, $6, $7, $4 WHERE $8 AND NOT (SELECT ended FROM ended)"
    "  ON CONFLICT (request_id) DO NOTHING RETURNING *),"
    " locked AS (SELECT * FROM notifier.reminders WHERE request_id = $1 FOR UPDATE)"
    " SELECT e.ended, s.* FROM ended e LEFT JOIN (SELECT * FROM opened UNION ALL SELECT * FROM locked) s ON true"
)

# A spooled mail's columns, in the order of :func:`_mail_values` (its time twice: queued and first due).
_MAIL_COLUMNS = (
    "notifier.mails (mail_id, org, document_id, kind, recipient, subject, text_body, html_body,"
    " next_attempt_at, created_at, request_id, related_documents, link_kind, link_person)"
)


def _mail_values(mail: SpooledMail, now: datetime) -> tuple[object, ...]:
    """The values :data:`_MAIL_COLUMNS` takes, ``now`` once (its placeholder goes twice)."""
    return (
        mail.mail_id, mail.org, mail.document_id, mail.kind, mail.recipient,
        mail.content.subject, mail.content.text, mail.content.html, now,
        mail.request_id, list(mail.related_documents) or None, mail.link_kind, mail.link_person,
    )


# The same for a new request whose recipient the digests follow, in one statement where it took three: the schedule
# it opens notes who the request is for ($8-$10); her mail preference is read from the directory; and, unless she
# may be waiting for a digest, the request's mail (from $11, as :meth:`PostgresNotifierStore.queue_mail` has them)
# is queued. ``noted``: the schedule was opened here; ``queued``: so was the mail.
_SCHEDULE_FOR_REQUEST = (
    "WITH ended AS (SELECT EXISTS (SELECT 1 FROM notifier.ended_documents WHERE document_id = $2) AS ended),"
    " opened AS (INSERT INTO notifier.reminders (request_id, org, document_id, requested_at, due_at, next_at, status, updated_at,"
    "  person_id, recipient, title)"
    "  SELECT $1, $3, $2, $4, $5, $6, $7, $4, $8, $9, $10 WHERE NOT (SELECT ended FROM ended)"
    "  ON CONFLICT (request_id) DO NOTHING RETURNING *),"
    " locked AS (SELECT * FROM notifier.reminders WHERE request_id = $1 FOR UPDATE),"
    " preference AS (SELECT coalesce((SELECT mails FROM router.people WHERE org = $3 AND id = $8), 'individual') AS mails),"
    " queued AS (INSERT INTO " + _MAIL_COLUMNS +
    "  SELECT $11, $12, $13, $14, $15, $16, $17, $18, $19, $19, $20, $21, $22, $23"
    "  WHERE EXISTS (SELECT 1 FROM opened) AND (SELECT mails FROM preference) <> 'digest'"
    "  ON CONFLICT (mail_id) DO NOTHING RETURNING true)"
    " SELECT e.ended, s.*, EXISTS (SELECT 1 FROM opened) AS noted, (SELECT mails FROM preference) AS preference,"
    "  EXISTS (SELECT 1 FROM queued) AS queued"
    " FROM ended e LEFT JOIN (SELECT * FROM opened UNION ALL SELECT * FROM locked) s ON true"
)


# No status condition: a mail cancelled while it was on the wire was still delivered. Parameters from $6: it goes in
# front of the outbox's insert (Outbox.write).
_MARK_SENT = (
    "UPDATE notifier.mails SET status = 'sent', sent_at = $7, attempts = attempts + 1, last_error = NULL,"
    " text_body = NULL, html_body = NULL WHERE mail_id = ANY($6::uuid[])"
)


# Whether a mail was queued in this task since :func:`took_queued` last said so. The consumer edge runs a message's
# handler, commits and calls its ``after_commit`` in one task, so that call learns whether its commit gave the sender
# anything to send: most events (a signature, a completed document) queue nothing, and a sender woken for nothing
# asks the database for due mails in vain.
_QUEUED: ContextVar[bool] = ContextVar("notifier_mail_queued", default=False)


def took_queued() -> bool:
    """Whether this task queued a mail since the last call (in a transaction since committed, or rolled back)."""
    if not _QUEUED.get():
        return False
    _QUEUED.set(False)
    return True


class PostgresNotifierStore(TransactionStore):
    """The notifier's schema, through the connection of the transaction a message or a loop's round runs in;
    ``directory`` is the process's :class:`Directory`."""

    def __init__(self, conn: asyncpg.Connection, outbox: Outbox, directory: Directory | None = None) -> None:
        super().__init__(conn, outbox)
        self._directory = directory or Directory()
        self.written: list[OutboxRow] = []  # outbox rows its own statements wrote, for the relay once committed

    async def keep_dead_letter(self, mail_id: UUID, body: bytes, headers: dict[str, str]) -> None:
        """A mail that could not be delivered, kept in notifier.events.dlq (with the transaction)."""
        await self._outbox.add_raw(self._conn, DLX.name, NOTIFIER_EVENTS.name, mail_id, body, headers)

    # The mail spool.

    async def queue_mail(self, mail: SpooledMail, now: datetime) -> bool:
        """Queue one mail per intent; False when this intent already has its mail."""
        queued = await self._conn.fetchval(
            "INSERT INTO " + _MAIL_COLUMNS +
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $10, $11, $12, $13) ON CONFLICT (mail_id) DO NOTHING RETURNING true",
            *_mail_values(mail, now),
        )
        if queued:
            _QUEUED.set(True)
        return bool(queued)

    async def mail(self, mail_id: UUID) -> SpooledMail | None:
        row = await self._conn.fetchrow("SELECT * FROM notifier.mails WHERE mail_id = $1", mail_id)
        return _mail(row) if row else None

    async def claim_due(self, now: datetime, lease_until: datetime, limit: int, held: Sequence[UUID] = ()) -> list[SpooledMail]:
        """Take up to ``limit`` due mails for one attempt; they are due again at ``lease_until``
        should this process die before it records how the attempt went. ``held``: mails this process has on their
        way, never taken again by it, even when the clock has passed their lease (delivered, their mark not yet
        committed: a second copy would carry a new link that revokes the one just delivered)."""
        rows = await self._conn.fetch(
            "UPDATE notifier.mails SET next_attempt_at = $2 WHERE mail_id IN ("
            " SELECT mail_id FROM notifier.mails WHERE status = 'pending' AND next_attempt_at <= $1"
            " AND NOT mail_id = ANY($4::uuid[])"
            " ORDER BY next_attempt_at LIMIT $3 FOR UPDATE SKIP LOCKED) RETURNING *",
            now, lease_until, limit, list(held),
        )
        return [_mail(r) for r in rows]

    async def release(self, mail_ids: Sequence[UUID], at: datetime) -> None:
        """Give back claimed mails that were not sent, due again ``at`` (now when stopping, soon when the signer did
        not answer) rather than at the lease's end; no attempt is counted."""
        await self._conn.execute(
            "UPDATE notifier.mails SET next_attempt_at = $2 WHERE mail_id = ANY($1::uuid[]) AND status = 'pending'",
            list(mail_ids), at,
        )

    async def renew_lease(self, mail: SpooledMail, until: datetime) -> None:
        """Keep the claim on a mail being sent until ``until``, unless its attempt was recorded meanwhile."""
        await self._conn.execute(
            "UPDATE notifier.mails SET next_attempt_at = $3 WHERE mail_id = $1 AND status = 'pending' AND attempts = $2",
            mail.mail_id, mail.attempts, until,
        )

    async def mark_sent(self, mail_ids: Sequence[UUID], now: datetime, told: Sequence[BaseModel] = ()) -> None:
        """The mails delivered together, with the messages that tell it (``told``), in one statement: atomic by
        itself, it needs no transaction; what it wrote goes to the relay once the store is left (:attr:`written`)."""
        rows = [self._outbox.row(message) for message in told]
        self.written += await self._outbox.write(self._conn, rows, change=_MARK_SENT, args=(list(mail_ids), now))

    async def mark_retry(self, mail_id: UUID, error: str, next_attempt_at: datetime) -> None:
        await self._conn.execute(
            "UPDATE notifier.mails SET attempts = attempts + 1, last_error = $2, next_attempt_at = $3"
            " WHERE mail_id = $1 AND status = 'pending'",
            mail_id, error, next_attempt_at,
        )

    async def mark_failed(self, mail_id: UUID, error: str) -> None:
        await self._conn.execute(
            "UPDATE notifier.mails SET status = 'failed', attempts = attempts + 1, last_error = $2,"
            " text_body = NULL, html_body = NULL WHERE mail_id = $1",
            mail_id, error,
        )

    async def mark_cancelled(self, mail_id: UUID, reason: str) -> None:
        await self._conn.execute(
            "UPDATE notifier.mails SET status = 'cancelled', last_error = $2, text_body = NULL, html_body = NULL"
            " WHERE mail_id = $1 AND status = 'pending'",
            mail_id, reason,
        )

    async def _cancel_link_mails(self, *, request_id: UUID | None = None, document_id: UUID | None = None) -> None:
        """Unsent signing-link mails of a closed request (or of every request of a document)
        will not go out: their link no longer works."""
        await self._conn.execute(
            "UPDATE notifier.mails SET status = 'cancelled', text_body = NULL, html_body = NULL"
            " WHERE status = 'pending' AND request_id IS NOT NULL AND (request_id = $1 OR document_id = $2)",
            request_id, document_id,
        )

    # Requests, their reminders, and documents that ended.

    async def document_ended(self, document_id: UUID) -> bool:
        return bool(await self._conn.fetchval("SELECT true FROM notifier.ended_documents WHERE document_id = $1", document_id))

    async def open_schedule(self, schedule: Schedule) -> None:
        """Start following a request, unless it is followed (or closed) already."""
        s = schedule
        await self._conn.execute(
            "INSERT INTO notifier.reminders (request_id, org, document_id, requested_at, due_at, next_at, status, updated_at)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $4) ON CONFLICT (request_id) DO NOTHING",
            s.request_id, s.org, s.document_id, s.requested_at, s.due_at, s.next_at, s.status,
        )

    async def schedule(self, request_id: UUID, *, lock: bool = False) -> Schedule | None:
        """The request's schedule; ``lock`` holds it so that closing the request waits for this transaction."""
        row = await self._conn.fetchrow(
            "SELECT * FROM notifier.reminders WHERE request_id = $1" + (" FOR UPDATE" if lock else ""), request_id
        )
        return _schedule(row) if row else None

    async def schedule_for_mail(self, request_id: UUID, document_id: UUID, opening: Schedule | None) -> tuple[bool, Schedule | None]:
        """Whether the document ended, and the request's schedule, locked so that closing the request waits for this
        transaction; ``opening`` starts following it first, unless the document ended. One statement for the three."""
        o = opening or Schedule(request_id, "", document_id)
        row = await self._conn.fetchrow(
            _SCHEDULE_FOR_MAIL,
            request_id, document_id, o.org, o.requested_at, o.due_at, o.next_at, o.status, opening is not None,
        )
        if row["request_id"] is None and opening is not None and not row["ended"]:
            # Opened by another transaction after this statement's snapshot was taken: read it now, locked.
            return False, await self.schedule(request_id, lock=True)
        return row["ended"], _schedule(row) if row["request_id"] is not None else None

    async def schedule_for_request(
        self, opening: Schedule, recipient: PersonRef, title: str, mail: SpooledMail, now: datetime
    ) -> tuple[bool, Schedule | None, str | None, bool]:
        """:meth:`schedule_for_mail` for a new request (``opening``) that, opening its schedule, notes who it is for,
        reads her mail preference (see :meth:`note_recipient_preference`) and, unless that is 'digest', queues its
        ``mail`` (:meth:`queue_mail`), in the same statement: (ended, schedule, preference, queued). The preference is
        None when she was not noted (the schedule was there already, or the directory may not be readable), and
        nothing was queued then: the steps that follow go as before."""
        if not self._directory.readable:
            return (*await self.schedule_for_mail(opening.request_id, opening.document_id, opening), None, False)
        o = opening
        try:
            row = await self._conn.fetchrow(
                _SCHEDULE_FOR_REQUEST,
                o.request_id, o.document_id, o.org, o.requested_at, o.due_at, o.next_at, o.status,
                recipient.id, recipient.model_dump(mode="json"), title, *_mail_values(mail, now),
            )
        except _UNREADABLE:  # no longer: this transaction is lost, and the message's next try reads in a savepoint
            self._directory.readable = False
            raise
        if row["request_id"] is None and not row["ended"]:
            # Opened by another transaction after this statement's snapshot was taken: read it now, locked.
            return False, await self.schedule(o.request_id, lock=True), None, False
        if row["queued"]:
            _QUEUED.set(True)
        schedule = _schedule(row) if row["request_id"] is not None else None
        return row["ended"], schedule, row["preference"] if row["noted"] else None, row["queued"]

    async def close_request(self, request_id: UUID, org: str, document_id: UUID, closed_by: str, now: datetime) -> None:
        """No more reminders or link mails for this request, even if its first command is still on its way."""
        await self._conn.execute(
            "INSERT INTO notifier.reminders (request_id, org, document_id, status, closed_by, updated_at)"
            " VALUES ($1, $2, $3, 'closed', $4, $5)"
            " ON CONFLICT (request_id) DO UPDATE SET status = 'closed', next_at = NULL, closed_by = $4, updated_at = $5"
            " WHERE notifier.reminders.status <> 'closed'",
            request_id, org, document_id, closed_by, now,
        )
        # Apart: with a snapshot of its own, it sees a mail queued by the transaction whose lock on the schedule it waited for.
        await self._cancel_link_mails(request_id=request_id)

    async def end_document(self, document_id: UUID, org: str, status: str, now: datetime) -> None:
        """The document ended (``status``: completed, declined, withdrawn): none of its requests is followed any more."""
        await self._conn.execute(
            "WITH ended AS (INSERT INTO notifier.ended_documents (document_id, org, status, ended_at)"
            " VALUES ($1, $2, $3, $4) ON CONFLICT (document_id) DO NOTHING)"
            " UPDATE notifier.reminders SET status = 'closed', next_at = NULL, closed_by = $5, updated_at = $4"
            " WHERE document_id = $1 AND status <> 'closed'",
            document_id, org, status, now, f"document.{status}",
        )
        # Apart: with a snapshot of its own, it sees a mail queued by a transaction whose lock on a schedule it waited for.
        await self._cancel_link_mails(document_id=document_id)

    async def due_reminders(self, now: datetime, limit: int) -> list[Schedule]:
        """Open requests whose next reminder is due, locked (replicas skip each other's)."""
        rows = await self._conn.fetch(
            "SELECT * FROM notifier.reminders WHERE status = 'open' AND next_at <= $1"
            " ORDER BY next_at LIMIT $2 FOR UPDATE SKIP LOCKED",
            now, limit,
        )
        return [_schedule(r) for r in rows]

    async def reminder_issued(self, request_id: UUID, number: int, next_at: datetime | None, now: datetime) -> None:
        """Reminder ``number`` was asked for; the next is due at ``next_at`` (None: it was the last)."""
        await self._conn.execute(
            "UPDATE notifier.reminders SET sent = $2, next_at = $3, updated_at = $4,"
            " status = CASE WHEN $3::timestamptz IS NULL THEN 'exhausted' ELSE 'open' END WHERE request_id = $1",
            request_id, number, next_at, now,
        )

    # Moves away from an absent person, told in one notice per absence.

    async def record_move(self, move: Move) -> None:
        m = move
        await self._conn.execute(
            "INSERT INTO notifier.moves (event_id, org, document_id, person_id, from_person, to_person, title, reason,"
            " moved_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (event_id) DO NOTHING",
            m.event_id, m.org, m.document_id, m.person_id, m.from_person.model_dump(), m.to_person.model_dump(),
            m.title, m.reason, m.moved_at,
        )

    async def moves_to_tell(self, moved_before: datetime) -> list[tuple[str, str]]:
        """(org, person) whose first untold move happened before ``moved_before``."""
        rows = await self._conn.fetch(
            "SELECT org, person_id FROM notifier.moves WHERE mail_id IS NULL"
            " GROUP BY org, person_id HAVING min(moved_at) <= $1",
            moved_before,
        )
        return [(r["org"], r["person_id"]) for r in rows]

    async def waiting_moves(self, org: str, person_id: str) -> list[Move]:
        """A person's untold moves, oldest first, locked (another replica telling them skips them)."""
        rows = await self._conn.fetch(
            "SELECT * FROM notifier.moves WHERE org = $1 AND person_id = $2 AND mail_id IS NULL"
            " ORDER BY moved_at, event_id FOR UPDATE SKIP LOCKED",
            org, person_id,
        )
        return [_move(r) for r in rows]

    async def mark_moves_told(self, event_ids: Sequence[UUID], mail_id: UUID) -> None:
        await self._conn.execute(
            "UPDATE notifier.moves SET mail_id = $2 WHERE event_id = ANY($1::uuid[])", list(event_ids), mail_id
        )

    # Daily digests (services/notifier/digests.py).

    async def mail_preference(self, org: str, person_id: str) -> str:
        """'individual' or 'digest', as the directory has it (individual for someone it no longer has, and on an
        installation whose `paraaf db setup` has not yet granted the notifier the directory: mail goes on as before)."""
        sql = "SELECT mails FROM router.people WHERE org = $1 AND id = $2"
        if self._directory.readable:
            try:
                return await self._conn.fetchval(sql, org, person_id) or "individual"
            except _UNREADABLE:  # no longer: this transaction is lost, and the message's next try reads in a savepoint
                self._directory.readable = False
                raise
        try:
            async with self._conn.transaction():  # a savepoint: a refused read must not abort the message's transaction
                found = await self._conn.fetchval(sql, org, person_id)
        except _UNREADABLE as exc:
            structlog.get_logger().warning("mail preference unreadable: run `paraaf db setup`", error=str(exc))
            return "individual"
        self._directory.readable = True
        return found or "individual"

    async def note_recipient_preference(self, request_id: UUID, org: str, recipient: PersonRef, title: str) -> str:
        """:meth:`note_recipient`, then her :meth:`mail_preference`: in one statement once the directory was read (a
        round trip less for every new request), apart while that is in doubt (the read then takes a savepoint)."""
        if not self._directory.readable:
            await self.note_recipient(request_id, recipient, title)
            return await self.mail_preference(org, recipient.id)
        try:
            return await self._conn.fetchval(
                "WITH noted AS (UPDATE notifier.reminders SET person_id = $2, recipient = $3, title = $4 WHERE request_id = $1)"
                " SELECT coalesce((SELECT mails FROM router.people WHERE org = $5 AND id = $2), 'individual')",
                request_id, recipient.id, recipient.model_dump(mode="json"), title, org,
            )
        except _UNREADABLE:  # no longer: this transaction is lost, and the message's next try reads in a savepoint
            self._directory.readable = False
            raise

    async def note_recipient(self, request_id: UUID, recipient: PersonRef, title: str) -> None:
        await self._conn.execute(
            "UPDATE notifier.reminders SET person_id = $2, recipient = $3, title = $4 WHERE request_id = $1",
            request_id, recipient.id, recipient.model_dump(mode="json"), title,
        )

    async def waiting_for(self, org: str, person_id: str) -> int:
        """Requests still open for her, on documents still under way."""
        return await self._conn.fetchval(
            "SELECT count(*) FROM notifier.reminders r WHERE r.org = $1 AND r.person_id = $2 AND r.status <> 'closed'"
            " AND NOT EXISTS (SELECT 1 FROM notifier.ended_documents e WHERE e.document_id = r.document_id)",
            org, person_id,
        )

    async def hold_for_digest(self, request_id: UUID) -> None:
        await self._conn.execute("UPDATE notifier.reminders SET held_for_digest = true WHERE request_id = $1", request_id)

    async def digests_due(self, since: datetime) -> list[tuple[str, str]]:
        """(org, person) with a request held for a digest not sent yet, and no digest since ``since``."""
        rows = await self._conn.fetch(
            "SELECT DISTINCT r.org, r.person_id FROM notifier.reminders r"
            " WHERE r.held_for_digest AND r.digest_mail_id IS NULL AND r.status <> 'closed'"
            " AND NOT EXISTS (SELECT 1 FROM notifier.ended_documents e WHERE e.document_id = r.document_id)"
            " AND NOT EXISTS (SELECT 1 FROM notifier.digests d WHERE d.org = r.org AND d.person_id = r.person_id"
            "                 AND d.created_at >= $1)",
            since,
        )
        return [(r["org"], r["person_id"]) for r in rows]

    async def waiting_requests(self, org: str, person_id: str) -> list[tuple[UUID, UUID, PersonRef, str, bool]]:
        """Her open requests, oldest first, locked (another replica sending her digest skips them):
        (request, document, recipient, title, held for the digest)."""
        rows = await self._conn.fetch(
            "SELECT request_id, document_id, recipient, title, held_for_digest FROM notifier.reminders r"
            " WHERE r.org = $1 AND r.person_id = $2 AND r.status <> 'closed' AND r.recipient IS NOT NULL"
            " AND NOT EXISTS (SELECT 1 FROM notifier.ended_documents e WHERE e.document_id = r.document_id)"
            " ORDER BY r.requested_at, r.request_id FOR UPDATE SKIP LOCKED",
            org, person_id,
        )
        return [
            (r["request_id"], r["document_id"], PersonRef.model_validate(r["recipient"]), r["title"] or "", r["held_for_digest"])
            for r in rows
        ]

    async def record_digest(self, mail_id: UUID, org: str, person_id: str, requests: Sequence[UUID], waiting: int, now: datetime) -> None:
        await self._conn.execute(
            "INSERT INTO notifier.digests (mail_id, org, person_id, waiting, created_at) VALUES ($1, $2, $3, $4, $5)"
            " ON CONFLICT DO NOTHING",
            mail_id, org, person_id, waiting, now,
        )
        await self._conn.execute(
            "UPDATE notifier.reminders SET digest_mail_id = $2 WHERE request_id = ANY($1::uuid[]) AND held_for_digest",
            list(requests), mail_id,
        )


class NotifierTransactions:
    """The notifier's store in a transaction of its own, for the loops that run apart from
    the consumer (the sender and the reminder scheduler). What a transaction sends is written with one statement
    before its commit and, committed, handed to the relay, as the consumer edge does: no sweep has to find it
    (a sweep is a transaction of four round trips). ``unhanded`` is called when no relay took them (not started
    yet): it must look for them."""

    def __init__(self, pool: Callable[[], asyncpg.Pool], outbox: Outbox, unhanded: Callable[[], None] = lambda: None) -> None:
        self._pool = pool
        self._outbox = outbox
        self._unhanded = unhanded

    @asynccontextmanager
    async def __call__(self) -> AsyncIterator[NotifierStore]:
        async with self._pool().acquire() as conn:
            with gathered(conn) as outgoing:
                async with conn.transaction():
                    store = PostgresNotifierStore(conn, self._outbox)
                    yield store
                    await outgoing.write()
                self._hand(store.written, outgoing.committed())

    @asynccontextmanager
    async def alone(self) -> AsyncIterator[NotifierStore]:
        """The store in no transaction: for a change that is one statement, atomic by itself."""
        async with self._pool().acquire() as conn:
            store = PostgresNotifierStore(conn, self._outbox)
            try:
                yield store
            finally:  # each statement committed as it ran, even when a later one failed
                self._hand(store.written)

    def _hand(self, written: list[OutboxRow], handed: bool = True) -> None:
        if written and not self._outbox.committed(written):
            handed = False
        if not handed:
            self._unhanded()
