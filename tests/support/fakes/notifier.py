"""An in-memory :class:`NotifierStore` for unit tests: the same behaviour as PostgresNotifierStore
(tests/integration/test_notifier_store.py runs one contract against both)."""

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel

from services.notifier.domain import Move, Schedule
from services.notifier.render import Mail
from services.notifier.store import SpooledMail
from shared.events import PersonRef

__all__ = ["FakeNotifierStore"]



def _cleared(mail: SpooledMail, **changes: Any) -> SpooledMail:
    return replace(mail, content=Mail(mail.content.subject, "", ""), **changes)


class FakeNotifierStore:
    def __init__(self) -> None:
        self.published: list[BaseModel] = []
        self.dead_letters: list[tuple[UUID, bytes, dict[str, str]]] = []
        self.mails: dict[UUID, SpooledMail] = {}
        self.schedules: dict[UUID, Schedule] = {}
        self.ended: dict[UUID, str] = {}
        self.moves: dict[UUID, Move] = {}
        self.told: dict[UUID, UUID] = {}  # move event id -> the notice's mail id

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator["FakeNotifierStore"]:
        """The store as the sender and the scheduler get it: everything here commits at once."""
        yield self

    def sent(self, kind: type[BaseModel]) -> list[Any]:
        return [m for m in self.published if isinstance(m, kind)]

    async def publish(self, message: BaseModel) -> None:
        self.published.append(message)

    async def keep_dead_letter(self, mail_id: UUID, body: bytes, headers: dict[str, str]) -> None:
        self.dead_letters.append((mail_id, body, headers))

    # The mail spool.

    async def queue_mail(self, mail: SpooledMail, now: datetime) -> bool:
        if mail.mail_id in self.mails:
            return False
        self.mails[mail.mail_id] = replace(mail, created_at=now, next_attempt_at=now, status="pending", attempts=0)
        return True

    async def mail(self, mail_id: UUID) -> SpooledMail | None:
        return self.mails.get(mail_id)

    async def claim_due(self, now: datetime, lease_until: datetime, limit: int, held: Sequence[UUID] = ()) -> list[SpooledMail]:
        due = [
            m
            for m in self.mails.values()
            if m.status == "pending" and m.next_attempt_at and m.next_attempt_at <= now and m.mail_id not in held
        ]
        claimed = [replace(m, next_attempt_at=lease_until) for m in sorted(due, key=lambda m: m.next_attempt_at)[:limit]]
        self.mails.update((m.mail_id, m) for m in claimed)
        return claimed

    async def release(self, mail_ids: Sequence[UUID], at: datetime) -> None:
        for mail_id in mail_ids:
            if self.mails[mail_id].status == "pending":
                self.mails[mail_id] = replace(self.mails[mail_id], next_attempt_at=at)

    async def renew_lease(self, mail: SpooledMail, until: datetime) -> None:
        held = self.mails[mail.mail_id]
        if held.status == "pending" and held.attempts == mail.attempts:
            self.mails[mail.mail_id] = replace(held, next_attempt_at=until)

    async def mark_sent(self, mail_ids: Sequence[UUID], now: datetime, told: Sequence[BaseModel] = ()) -> None:
        self.published.extend(told)
        for mail_id in mail_ids:
            mail = self.mails[mail_id]
            self.mails[mail_id] = _cleared(mail, status="sent", sent_at=now, attempts=mail.attempts + 1, last_error=None)

    async def mark_retry(self, mail_id: UUID, error: str, next_attempt_at: datetime) -> None:
        mail = self.mails[mail_id]
        if mail.status == "pending":
            self.mails[mail_id] = replace(mail, attempts=mail.attempts + 1, last_error=error, next_attempt_at=next_attempt_at)

    async def mark_failed(self, mail_id: UUID, error: str) -> None:
        mail = self.mails[mail_id]
        self.mails[mail_id] = _cleared(mail, status="failed", attempts=mail.attempts + 1, last_error=error)

    async def mark_cancelled(self, mail_id: UUID, reason: str) -> None:
        if self.mails[mail_id].status == "pending":
            self.mails[mail_id] = _cleared(self.mails[mail_id], status="cancelled", last_error=reason)

    def _cancel_link_mails(self, *, request_id: UUID | None = None, document_id: UUID | None = None) -> None:
        for mail in list(self.mails.values()):
            ours = (request_id is not None and mail.request_id == request_id) or (
                document_id is not None and mail.document_id == document_id
            )
            if mail.status == "pending" and mail.request_id is not None and ours:
                self.mails[mail.mail_id] = _cleared(mail, status="cancelled")

    # Requests, their reminders, and documents that ended.

    async def document_ended(self, document_id: UUID) -> bool:
        return document_id in self.ended

    async def open_schedule(self, schedule: Schedule) -> None:
        self.schedules.setdefault(schedule.request_id, schedule)

    async def schedule(self, request_id: UUID, *, lock: bool = False) -> Schedule | None:
        return self.schedules.get(request_id)

    async def schedule_for_mail(self, request_id: UUID, document_id: UUID, opening: Schedule | None) -> tuple[bool, Schedule | None]:
        ended = document_id in self.ended
        if opening is not None and not ended:
            self.schedules.setdefault(request_id, opening)
        return ended, self.schedules.get(request_id)

    async def schedule_for_request(
        self, opening: Schedule, recipient: PersonRef, title: str, mail: SpooledMail, now: datetime
    ) -> tuple[bool, Schedule | None, str | None, bool]:
        # No directory: nobody noted, nothing queued (the handler's next steps do it).
        return (*await self.schedule_for_mail(opening.request_id, opening.document_id, opening), None, False)

    async def close_request(self, request_id: UUID, org: str, document_id: UUID, closed_by: str, now: datetime) -> None:
        current = self.schedules.get(request_id)
        if current is None:
            self.schedules[request_id] = Schedule(request_id, org, document_id, status="closed", closed_by=closed_by)
        elif not current.closed:
            self.schedules[request_id] = replace(current, status="closed", next_at=None, closed_by=closed_by)
        self._cancel_link_mails(request_id=request_id)

    async def end_document(self, document_id: UUID, org: str, status: str, now: datetime) -> None:
        self.ended.setdefault(document_id, status)
        for schedule in list(self.schedules.values()):
            if schedule.document_id == document_id and not schedule.closed:
                self.schedules[schedule.request_id] = replace(schedule, status="closed", next_at=None, closed_by=f"document.{status}")
        self._cancel_link_mails(document_id=document_id)

    async def due_reminders(self, now: datetime, limit: int) -> list[Schedule]:
        due = [s for s in self.schedules.values() if s.status == "open" and s.next_at is not None and s.next_at <= now]
        return sorted(due, key=lambda s: s.next_at or now)[:limit]

    async def reminder_issued(self, request_id: UUID, number: int, next_at: datetime | None, now: datetime) -> None:
        status = "exhausted" if next_at is None else "open"
        self.schedules[request_id] = replace(self.schedules[request_id], sent=number, next_at=next_at, status=status)

    # Moves away from an absent person.

    async def record_move(self, move: Move) -> None:
        self.moves.setdefault(move.event_id, move)

    def _untold(self) -> list[Move]:
        return [m for m in self.moves.values() if m.event_id not in self.told]

    async def moves_to_tell(self, moved_before: datetime) -> list[tuple[str, str]]:
        first: dict[tuple[str, str], datetime] = {}
        for move in self._untold():
            key = (move.org, move.person_id)
            first[key] = min(first.get(key, move.moved_at), move.moved_at)
        return [key for key, moved_at in first.items() if moved_at <= moved_before]

    async def waiting_moves(self, org: str, person_id: str) -> list[Move]:
        waiting = [m for m in self._untold() if (m.org, m.person_id) == (org, person_id)]
        return sorted(waiting, key=lambda m: (m.moved_at, m.event_id))

    async def mark_moves_told(self, event_ids: Sequence[UUID], mail_id: UUID) -> None:
        self.told.update((event_id, mail_id) for event_id in event_ids)
