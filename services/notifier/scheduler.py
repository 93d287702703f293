"""The notifier's clock-driven work, a loop inside the service: reminders that
fell due, and notices to absent people whose gathering window closed.

A due reminder is not mailed from here: the notifier keeps no links. It asks
the signer (``ReissueSigningLink``), which answers with a fresh link only if
the request is still open. Everything is read from and written to the
database, so the schedule survives restarts and replicas share it.
"""

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta

import asyncpg
import structlog

from services.notifier import store
from services.notifier.domain import ReminderPolicy, reminder_command_id
from services.notifier.render import MailRenderer
from shared.contract import ReissueSigningLink
from shared.events import PersonRef
from shared.messaging import Outbox

__all__ = ["Scheduler"]


class Scheduler:
    def __init__(
        self,
        pool: Callable[[], asyncpg.Pool],
        outbox: Outbox,
        renderer: MailRenderer,
        policy: ReminderPolicy,
        *,
        notice_window: timedelta,
        clock: Callable[[], datetime],
        after_commit: Callable[[], None],
        poll_seconds: float,
        batch: int = 100,
    ) -> None:
        self._pool = pool
        self._outbox = outbox
        self._renderer = renderer
        self._policy = policy
        self._window = notice_window
        self._clock = clock
        self._after_commit = after_commit
        self._poll = poll_seconds
        self._batch = batch

    async def run(self) -> None:
        while True:
            await self.tick()
            await asyncio.sleep(self._poll)

    async def tick(self) -> int:
        """Do what is due now; return how many reminders and notices were issued."""
        done = await self.issue_reminders() + await self.tell_moves()
        if done:
            self._after_commit()
        return done

    async def issue_reminders(self) -> int:
        now = self._clock()
        async with self._pool().acquire() as conn, conn.transaction():
            due = await store.due_reminders(conn, now, self._batch)
            for row in due:
                number = row["sent"] + 1
                await self._outbox.add(
                    conn,
                    ReissueSigningLink(
                        command_id=reminder_command_id(row["request_id"], number),
                        correlation_id=row["document_id"],
                        org=row["org"],
                        request_id=row["request_id"],
                        reminder=number,
                    ),
                )
                await store.reminder_issued(
                    conn, row["request_id"], number, self._policy.next_reminder(now, number), now
                )
        if due:
            structlog.get_logger().info("reminders due", count=len(due))
        return len(due)

    async def tell_moves(self) -> int:
        """One notice per absent person, listing every request moved away from them in the window."""
        now = self._clock()
        told = 0
        async with self._pool().acquire() as conn, conn.transaction():
            for org, person_id in await store.moves_to_tell(conn, now - self._window):
                moves = await store.waiting_moves(conn, org, person_id)
                if not moves:
                    continue  # another replica is telling them
                person = PersonRef.model_validate(moves[0]["from_person"])
                mail = self._renderer.render(
                    "moved",
                    person.language,
                    recipient=person,
                    moves=[
                        {"title": m["title"], "to_person": PersonRef.model_validate(m["to_person"]), "reason": m["reason"]}
                        for m in moves
                    ],
                )
                # The notice is keyed by the first move it lists: telling it again finds the same mail.
                mail_id = moves[0]["event_id"]
                await store.queue_mail(
                    conn,
                    mail_id=mail_id,
                    org=org,
                    document_id=moves[0]["document_id"],
                    kind="signatures_moved",
                    recipient=person.email,
                    mail=mail,
                    now=now,
                    related_documents=list(dict.fromkeys(m["document_id"] for m in moves)),
                )
                await store.mark_moves_told(conn, [m["event_id"] for m in moves], mail_id)
                told += 1
        return told
