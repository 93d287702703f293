"""The reminder scheduler's rounds on an in-memory store: reminders asked of the signer, and one notice per absent person."""

from datetime import datetime, timedelta
from uuid import uuid4
from zoneinfo import ZoneInfo

from services.notifier.domain import Move, ReminderPolicy, Schedule, reminder_command_id
from services.notifier.render import MailRenderer
from services.notifier.scheduler import ReminderScheduler, ask_due_reminders, tell_moves
from shared.contract import ReissueSigningLink
from shared.events import PersonRef
from tests.support.fakes.notifier import FakeNotifierStore

BRUSSELS = ZoneInfo("Europe/Brussels")
THURSDAY = datetime(2026, 3, 5, 10, 1, tzinfo=BRUSSELS)
POLICY = ReminderPolicy(after=3, every=2, maximum=3, due_after=5, timezone="Europe/Brussels")
BART = PersonRef(id="bart", name="Bart Baert", email="bart@x.be", title="burgemeester")
MARC = PersonRef(id="marc", name="Marc Maes", email="marc@x.be", language="fr")
SOFIE = PersonRef(id="sofie", name="Sofie Smet", email="sofie@x.be")


def schedule(next_at: datetime, sent: int = 0) -> Schedule:
    return Schedule(uuid4(), "default", uuid4(), THURSDAY - timedelta(days=3), THURSDAY + timedelta(days=4), next_at, sent)


def move(person: PersonRef, title: str, minutes_ago: int, document_id: object = None) -> Move:
    return Move(uuid4(), "default", document_id or uuid4(), person, SOFIE, title, "absent", THURSDAY - timedelta(minutes=minutes_ago))  # type: ignore[arg-type]


async def test_a_due_reminder_is_asked_of_the_signer_with_a_stable_id_and_the_next_one_planned() -> None:
    """The first reminder due is asked for as ReissueSigningLink 1; the second is planned two working days on; one not due waits."""
    store = FakeNotifierStore()
    due, later = schedule(THURSDAY - timedelta(minutes=1)), schedule(THURSDAY + timedelta(hours=1))
    for s in (due, later):
        await store.open_schedule(s)
    assert await ask_due_reminders(store, POLICY, THURSDAY, 100) == 1
    [asked] = store.sent(ReissueSigningLink)
    assert (asked.request_id, asked.reminder, asked.command_id) == (due.request_id, 1, reminder_command_id(due.request_id, 1))
    assert (asked.correlation_id, store.schedules[due.request_id].next_at) == (due.document_id, datetime(2026, 3, 9, 10, 1, tzinfo=BRUSSELS))


async def test_the_last_reminder_ends_the_schedule() -> None:
    """After the third reminder none is planned."""
    store, last = FakeNotifierStore(), schedule(THURSDAY, sent=2)
    await store.open_schedule(last)
    await ask_due_reminders(store, POLICY, THURSDAY, 100)
    assert (store.schedules[last.request_id].status, store.sent(ReissueSigningLink)[0].reminder) == ("exhausted", 3)
    assert await ask_due_reminders(store, POLICY, THURSDAY + timedelta(days=30), 100) == 0


async def test_the_moves_of_one_absence_are_told_in_one_notice_per_person() -> None:
    """Bart's three moves become one notice about their documents, keyed by the first move; Marc's is his own, in French."""
    store, shared_document = FakeNotifierStore(), uuid4()
    moves = [move(BART, "Besluit A", 5, shared_document), move(BART, "Besluit B", 4, shared_document), move(BART, "Besluit D", 3), move(MARC, "Besluit C", 3)]
    for m in moves:
        await store.record_move(m)
    assert await tell_moves(store, MailRenderer(), THURSDAY - timedelta(minutes=2), THURSDAY) == 2
    bart = store.mails[moves[0].event_id]
    assert bart.content.subject == "Tijdens uw afwezigheid overgedragen: 3 documenten"
    assert bart.related_documents == (shared_document, moves[2].document_id) and bart.recipient == BART.email
    assert store.mails[moves[3].event_id].content.subject == "Transmis pendant votre absence : 1 document"
    assert await tell_moves(store, MailRenderer(), THURSDAY, THURSDAY) == 0


async def test_moves_within_the_gathering_window_wait() -> None:
    """A move newer than the window is not told yet."""
    store = FakeNotifierStore()
    await store.record_move(move(BART, "Besluit A", 1))
    assert await tell_moves(store, MailRenderer(), THURSDAY - timedelta(minutes=2), THURSDAY) == 0
    assert store.mails == {}


async def test_a_round_that_did_something_wakes_the_sender_and_the_relay() -> None:
    """A round that asked a reminder calls after_commit; a round with nothing due does not."""
    store, woken = FakeNotifierStore(), []
    await store.open_schedule(schedule(THURSDAY - timedelta(minutes=1)))
    scheduler = ReminderScheduler(
        store.transaction, MailRenderer(), POLICY, notice_window=timedelta(minutes=2), clock=lambda: THURSDAY,
        after_commit=lambda: woken.append(True), poll_seconds=30,
    )
    assert await scheduler.tick() is False and woken == [True]
    await scheduler.tick()
    assert woken == [True]
