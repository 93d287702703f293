"""The notifier's clock-driven work, a loop inside the service: reminders that
fell due, and notices to absent people whose gathering window closed.

A due reminder is not mailed from here: the notifier keeps no links. It asks
the signer (``ReissueSigningLink``), which answers with a fresh link only if
the request is still open. Everything is read from and written to the
database, so the schedule survives restarts and replicas share it.
"""

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import cast

import structlog

from services.notifier.digests import DigestPolicy, DigestStore, send_digests
from services.notifier.domain import ReminderPolicy, Schedule, absence_notice
from services.notifier.render import MailRenderer
from services.notifier.store import NotifierStore, SpooledMail, Transaction
from shared.clock import Clock
from shared.contract import ReissueSigningLink
from shared.loops import BackgroundLoop

__all__ = ["ReminderScheduler", "ask_due_reminders", "tell_moves"]


async def ask_due_reminders(store: NotifierStore, policy: ReminderPolicy, now: datetime, limit: int) -> int:
    """Ask the signer for every reminder that fell due; return how many."""
    due = await store.due_reminders(now, limit)
    for schedule in due:
        await _ask_reminder(store, policy, schedule, now)
    if due:
        structlog.get_logger().info("reminders due", count=len(due))
    return len(due)


async def _ask_reminder(store: NotifierStore, policy: ReminderPolicy, schedule: Schedule, now: datetime) -> None:
    reminder = policy.reminder(schedule, now)
    await store.publish(
        ReissueSigningLink(
            command_id=reminder.command_id,
            correlation_id=schedule.document_id,
            org=schedule.org,
            request_id=schedule.request_id,
            reminder=reminder.number,
        )
    )
    await store.reminder_issued(schedule.request_id, reminder.number, reminder.next_at, now)


async def tell_moves(store: NotifierStore, renderer: MailRenderer, moved_before: datetime, now: datetime) -> int:
    """One notice per absent person, listing every request moved away from them since ``moved_before``; return how many."""
    told = 0
    for org, person_id in await store.moves_to_tell(moved_before):
        moves = await store.waiting_moves(org, person_id)
        if not moves:
            continue  # another replica is telling them
        notice = absence_notice(moves)
        mail = renderer.render(
            "moved",
            notice.person.language,
            recipient=notice.person,
            moves=[{"title": m.title, "to_person": m.to_person, "reason": m.reason} for m in notice.moves],
        )
        spooled = SpooledMail(
            notice.mail_id, org, notice.document_id, "signatures_moved", notice.person.email or "", mail, related_documents=notice.documents
        )
        await store.queue_mail(spooled, now)
        await store.mark_moves_told([m.event_id for m in notice.moves], notice.mail_id)
        told += 1
    return told


class ReminderScheduler(BackgroundLoop):
    """Asks for due reminders, tells absent people and sends the daily digests, every ``poll_seconds``."""

    def __init__(
        self,
        transaction: Transaction,
        renderer: MailRenderer,
        policy: ReminderPolicy,
        *,
        notice_window: timedelta,
        clock: Clock,
        after_commit: Callable[[], None],
        poll_seconds: float,
        batch: int = 100,
        digests: DigestPolicy | None = None,
    ) -> None:
        super().__init__(poll_seconds)
        self._transaction = transaction
        self._renderer = renderer
        self._policy = policy
        self._window = notice_window
        self._clock = clock
        self._after_commit = after_commit
        self._batch = batch
        self._digests = digests

    async def tick(self) -> bool:
        """Do what is due now, each kind in a transaction of its own."""
        async with self._transaction() as store:
            done = await ask_due_reminders(store, self._policy, self._clock(), self._batch)
        async with self._transaction() as store:
            now = self._clock()
            done += await tell_moves(store, self._renderer, now - self._window, now)
        if self._digests is not None:
            async with self._transaction() as store:
                done += await send_digests(cast(DigestStore, store), self._renderer, self._digests, self._clock())
        if done:
            self._after_commit()
        return False
