"""One contract, two stores: the in-memory FakeNotifierStore the unit tests use behaves as PostgresNotifierStore does."""

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID, uuid4

import asyncpg
import pytest

from services.notifier.domain import Move, Schedule
from services.notifier.render import Mail
from services.notifier.store import Directory, NotifierStore, NotifierTransactions, PostgresNotifierStore, SpooledMail
from shared.db import connect_pool, migrate
from shared.events import NotificationSent, PersonRef
from shared.messaging import Outbox
from tests.support.fakes.notifier import FakeNotifierStore
from tests.support.stores import in_rolled_back_transaction

MIGRATIONS = Path(__file__).resolve().parents[2] / "services" / "notifier" / "migrations"
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
BART = PersonRef(id="bart", name="Bart Baert", email="bart@x.be", title="burgemeester")
SOFIE = PersonRef(id="sofie", name="Sofie Smet", email="sofie@x.be")


@pytest.fixture(params=["fake", "postgres"])
async def store(request: pytest.FixtureRequest, database_url: str) -> AsyncIterator[NotifierStore]:
    if request.param == "fake":
        yield FakeNotifierStore()
        return
    async with in_rolled_back_transaction(database_url, ("notifier", MIGRATIONS, True)) as conn:
        yield PostgresNotifierStore(conn, Outbox("notifier"))


def spooled(document_id: UUID | None = None, request_id: UUID | None = None, **changes: object) -> SpooledMail:
    fields = dict(
        mail_id=uuid4(), org="default", document_id=document_id or uuid4(), kind="signature_request", recipient="ann@x.be",
        content=Mail("Ter ondertekening", "tekst", "<p>tekst</p>"), request_id=request_id,
        link_kind="signing" if request_id else None,
    )
    return SpooledMail(**{**fields, **changes})  # type: ignore[arg-type]


def schedule(document_id: UUID | None = None, **changes: object) -> Schedule:
    fields = dict(
        request_id=uuid4(), org="default", document_id=document_id or uuid4(), requested_at=NOW,
        due_at=NOW + timedelta(days=7), next_at=NOW + timedelta(days=3),
    )
    return Schedule(**{**fields, **changes})  # type: ignore[arg-type]


def move(at: datetime, person: PersonRef = BART, document_id: UUID | None = None) -> Move:
    return Move(uuid4(), "default", document_id or uuid4(), person, SOFIE, "Besluit", "absent", at)


async def test_a_mail_is_queued_once_per_intent_and_reads_back_pending(store: NotifierStore) -> None:
    """The same mail id twice queues one mail, due at once, with its content and what it concerns."""
    mail = spooled(related_documents=(uuid4(), uuid4()), link_kind="download", link_person="elen")
    assert await store.queue_mail(mail, NOW) is True
    assert await store.queue_mail(mail, NOW + timedelta(hours=1)) is False
    read = await store.mail(mail.mail_id)
    assert read == SpooledMail(**{**mail.__dict__, "created_at": NOW, "next_attempt_at": NOW})
    assert await store.mail(uuid4()) is None


async def test_a_sign_in_mail_reads_back_with_its_attempt(store: NotifierStore) -> None:
    """A sign-in mail is kept with the sign-in attempt it asks the signer's link for."""
    attempt_id = uuid4()
    mail = spooled(document_id=attempt_id, request_id=attempt_id, kind="sign_in", link_kind="sign_in")
    assert await store.queue_mail(mail, NOW) is True
    read = await store.mail(mail.mail_id)
    assert (read.kind, read.link_kind, read.request_id) == ("sign_in", "sign_in", attempt_id)


async def test_due_mails_are_claimed_oldest_first_and_leased(store: NotifierStore) -> None:
    """Only pending mails that are due are claimed, up to the limit; a claimed mail is not due again before its lease ends."""
    older, newer, later = spooled(), spooled(), spooled()
    await store.queue_mail(older, NOW - timedelta(minutes=2))
    await store.queue_mail(newer, NOW - timedelta(minutes=1))
    await store.queue_mail(later, NOW + timedelta(minutes=5))
    lease = NOW + timedelta(minutes=2)
    assert [m.mail_id for m in await store.claim_due(NOW, lease, 1)] == [older.mail_id]
    assert [m.mail_id for m in await store.claim_due(NOW, lease, 10)] == [newer.mail_id]
    assert await store.claim_due(NOW + timedelta(minutes=1), lease, 10) == []
    assert {m.mail_id for m in await store.claim_due(lease + timedelta(minutes=5), lease, 10)} == {
        older.mail_id, newer.mail_id, later.mail_id
    }


async def test_a_renewed_lease_keeps_the_claim_until_the_attempt_is_recorded(store: NotifierStore) -> None:
    """Renewing moves the claimed mail's lease on; once its attempt was recorded (a retry), a late renewal from the
    same claim changes nothing, so the retry's own time holds."""
    mail = spooled()
    await store.queue_mail(mail, NOW)
    [claimed] = await store.claim_due(NOW, NOW + timedelta(seconds=20), 1)
    await store.renew_lease(claimed, NOW + timedelta(seconds=40))
    assert (await store.mail(mail.mail_id)).next_attempt_at == NOW + timedelta(seconds=40)
    await store.mark_retry(mail.mail_id, "421 busy", NOW + timedelta(minutes=5))
    await store.renew_lease(claimed, NOW + timedelta(seconds=60))
    assert (await store.mail(mail.mail_id)).next_attempt_at == NOW + timedelta(minutes=5)


async def test_each_outcome_of_an_attempt_is_recorded(store: NotifierStore) -> None:
    """Retry counts the attempt and moves the mail on; sent, failed and cancelled end it and drop its text."""
    retried, sent, failed, cancelled = spooled(), spooled(), spooled(), spooled()
    for mail in (retried, sent, failed, cancelled):
        await store.queue_mail(mail, NOW)
    await store.mark_retry(retried.mail_id, "421 busy", NOW + timedelta(minutes=1))
    await store.mark_retry(sent.mail_id, "421 busy", NOW + timedelta(minutes=1))
    await store.mark_sent([sent.mail_id], NOW)
    await store.mark_failed(failed.mail_id, "550 no such user")
    await store.mark_cancelled(cancelled.mail_id, "not sent: closed")
    await store.mark_retry(cancelled.mail_id, "late", NOW)  # a mail no longer pending is not retried
    outcomes = [await store.mail(m.mail_id) for m in (retried, sent, failed, cancelled)]
    assert [(m.status, m.attempts, m.last_error) for m in outcomes] == [
        ("pending", 1, "421 busy"), ("sent", 2, None), ("failed", 1, "550 no such user"), ("cancelled", 0, "not sent: closed"),
    ]
    assert outcomes[0].next_attempt_at == NOW + timedelta(minutes=1) and outcomes[1].sent_at == NOW
    assert outcomes[0].content.text == "tekst" and {m.content.text for m in outcomes[1:]} == {""}


async def test_a_mail_delivered_after_it_was_cancelled_counts_as_sent(store: NotifierStore) -> None:
    """Cancelling a mail already on the wire does not stop it being recorded as sent; cancelling a sent mail changes nothing."""
    mail = spooled()
    await store.queue_mail(mail, NOW)
    await store.mark_cancelled(mail.mail_id, "closed")
    await store.mark_sent([mail.mail_id], NOW)
    await store.mark_cancelled(mail.mail_id, "closed again")
    assert (await store.mail(mail.mail_id)).status == "sent"


async def test_a_schedule_opens_once_and_reads_back(store: NotifierStore) -> None:
    """Opening a request's schedule twice keeps the first; an unknown request has none."""
    first = schedule()
    await store.open_schedule(first)
    await store.open_schedule(schedule(request_id=first.request_id, document_id=first.document_id, due_at=NOW))
    assert await store.schedule(first.request_id, lock=True) == first
    assert await store.schedule(uuid4()) is None


async def test_a_schedule_for_a_mail_is_opened_unless_the_request_is_closed_or_its_document_ended(store: NotifierStore) -> None:
    """A new request's schedule opens and comes back; a closed one comes back closed, not reopened; a reminder of an
    unknown request has none; on an ended document nothing opens and the answer says it ended."""
    opened, closed, late = schedule(), schedule(), schedule()
    assert await store.schedule_for_mail(opened.request_id, opened.document_id, opened) == (False, opened)
    assert await store.schedule(opened.request_id) == opened
    await store.close_request(closed.request_id, "default", closed.document_id, "signature.signed", NOW)
    ended, read = await store.schedule_for_mail(closed.request_id, closed.document_id, closed)
    assert not ended and (read.status, read.closed_by, read.requested_at) == ("closed", "signature.signed", None)
    assert await store.schedule_for_mail(uuid4(), opened.document_id, None) == (False, None)
    await store.end_document(late.document_id, "default", "withdrawn", NOW)
    assert await store.schedule_for_mail(late.request_id, late.document_id, late) == (True, None)
    assert await store.schedule(late.request_id) is None


async def test_closing_a_request_ends_its_reminders_and_cancels_its_unsent_link_mails(store: NotifierStore) -> None:
    """A closed request has no next reminder and its pending signing-link mails are cancelled; other mails stay."""
    opened = schedule()
    link, other_link, plain = (
        spooled(opened.document_id, opened.request_id), spooled(opened.document_id, uuid4()), spooled(opened.document_id)
    )
    await store.open_schedule(opened)
    for mail in (link, other_link, plain):
        await store.queue_mail(mail, NOW)
    await store.close_request(opened.request_id, "default", opened.document_id, "signature.signed", NOW)
    await store.close_request(opened.request_id, "default", opened.document_id, "signature.cancelled", NOW)
    closed = await store.schedule(opened.request_id)
    assert (closed.status, closed.next_at, closed.closed_by, closed.due_at) == ("closed", None, "signature.signed", opened.due_at)
    assert [(await store.mail(m.mail_id)).status for m in (link, other_link, plain)] == ["cancelled", "pending", "pending"]


async def test_a_request_closed_before_it_was_opened_stays_closed(store: NotifierStore) -> None:
    """Closing an unknown request leaves a closed schedule, which a late opening does not reopen."""
    late = schedule()
    await store.close_request(late.request_id, "default", late.document_id, "signature.signed", NOW)
    await store.open_schedule(late)
    read = await store.schedule(late.request_id)
    assert (read.status, read.closed_by, read.requested_at, read.next_at) == ("closed", "signature.signed", None, None)


async def test_an_ended_document_closes_its_requests_and_cancels_their_link_mails(store: NotifierStore) -> None:
    """Every open request of the document closes as document.<status>; its link mails are cancelled; other documents are untouched."""
    first, second, elsewhere = schedule(), schedule(), schedule()
    second = Schedule(**{**second.__dict__, "document_id": first.document_id})
    for s in (first, second, elsewhere):
        await store.open_schedule(s)
    link, plain, other = spooled(first.document_id, first.request_id), spooled(first.document_id), spooled(elsewhere.document_id, elsewhere.request_id)
    for mail in (link, plain, other):
        await store.queue_mail(mail, NOW)
    await store.end_document(first.document_id, "default", "withdrawn", NOW)
    assert await store.document_ended(first.document_id) and not await store.document_ended(elsewhere.document_id)
    closed_by = [(await store.schedule(s.request_id)).closed_by for s in (first, second, elsewhere)]
    assert closed_by == ["document.withdrawn", "document.withdrawn", None]
    assert [(await store.mail(m.mail_id)).status for m in (link, plain, other)] == ["cancelled", "pending", "pending"]


async def test_due_reminders_come_in_order_and_stop_when_the_last_is_issued(store: NotifierStore) -> None:
    """Open schedules whose reminder is due are found oldest first; issuing the last one exhausts the schedule."""
    soon, sooner, later = (schedule(next_at=NOW - timedelta(hours=h)) for h in (1, 2, -1))
    for s in (soon, sooner, later):
        await store.open_schedule(s)
    assert [s.request_id for s in await store.due_reminders(NOW, 10)] == [sooner.request_id, soon.request_id]
    await store.reminder_issued(sooner.request_id, 1, NOW + timedelta(days=2), NOW)
    await store.reminder_issued(soon.request_id, 3, None, NOW)
    assert [s.request_id for s in await store.due_reminders(NOW, 10)] == []
    issued = [await store.schedule(s.request_id) for s in (sooner, soon)]
    assert [(s.sent, s.status, s.next_at) for s in issued] == [(1, "open", NOW + timedelta(days=2)), (3, "exhausted", None)]


async def test_moves_wait_per_person_until_told(store: NotifierStore) -> None:
    """Moves are recorded once, found per person once the first is old enough, listed oldest first, and gone once told."""
    first, second, marc = move(NOW - timedelta(minutes=5)), move(NOW - timedelta(minutes=1)), move(NOW, PersonRef(id="marc", name="Marc"))
    for m in (second, first, first, marc):
        await store.record_move(m)
    assert await store.moves_to_tell(NOW - timedelta(minutes=2)) == [("default", "bart")]
    assert set(await store.moves_to_tell(NOW)) == {("default", "bart"), ("default", "marc")}
    assert await store.waiting_moves("default", "bart") == [first, second]
    await store.mark_moves_told([first.event_id, second.event_id], first.event_id)
    assert await store.waiting_moves("default", "bart") == []
    assert await store.moves_to_tell(NOW) == [("default", "marc")]


async def test_published_messages_and_dead_letters_are_kept_with_the_change(store: NotifierStore) -> None:
    """What the notifier publishes and the mails it keeps for operators are kept with its change (outbox rows, or the fake's lists)."""
    event = NotificationSent(correlation_id=uuid4(), causation_id=uuid4(), kind="signature_request", recipient="a@x.be", subject="s")
    mail_id = uuid4()
    await store.publish(event)
    await store.keep_dead_letter(mail_id, b'{"mail": 1}', {"x-paraaf-reason": "550"})
    if isinstance(store, FakeNotifierStore):
        assert store.published == [event] and store.dead_letters == [(mail_id, b'{"mail": 1}', {"x-paraaf-reason": "550"})]
    else:
        rows = await store._conn.fetch("SELECT message_id, exchange, routing_key FROM notifier.outbox ORDER BY id")
        assert [tuple(r) for r in rows] == [
            (event.event_id, "esign.events", "notification.sent"), (mail_id, "esign.dlx", "notifier.events")
        ]


async def test_mails_marked_sent_are_told_with_the_same_change(store: NotifierStore) -> None:
    """Two mails marked sent with their notification.sent: both sent, each event kept (an outbox row, handed on as
    written, or the fake's list); a mark that tells nothing writes no row."""
    first, second, quiet = spooled(), spooled(), spooled()
    for mail in (first, second, quiet):
        await store.queue_mail(mail, NOW)
    told = [
        NotificationSent(correlation_id=m.document_id, causation_id=m.mail_id, kind=m.kind, recipient=m.recipient, subject="s")
        for m in (first, second)
    ]
    await store.mark_sent([first.mail_id, second.mail_id], NOW, told)
    await store.mark_sent([quiet.mail_id], NOW)
    assert [(await store.mail(m.mail_id)).status for m in (first, second, quiet)] == ["sent"] * 3
    if isinstance(store, FakeNotifierStore):
        assert store.published == told
    else:
        rows = await store._conn.fetch("SELECT id, message_id, routing_key FROM notifier.outbox ORDER BY id")
        assert [(r["message_id"], r["routing_key"]) for r in rows] == [(e.event_id, "notification.sent") for e in told]
        assert [(w.id, w.message_id) for w in store.written] == [(r["id"], r["message_id"]) for r in rows]


async def test_what_the_sender_s_statements_and_transactions_send_goes_to_the_relay_once_committed(database_url: str) -> None:
    """Marked sent alone (one statement) and given up in a transaction, each mail's messages are handed to the relay
    as committed, with their outbox ids; a failed transaction hands nothing; with no relay to take them, the relay is
    woken to look for them instead."""
    pool = await connect_pool(database_url)
    try:
        await migrate(pool, "notifier", [MIGRATIONS], messaging=True)
        outbox, handed, woken = Outbox("notifier"), [], []
        transactions = NotifierTransactions(lambda: pool, outbox, unhanded=lambda: woken.append(1))
        sent, failed, lost = spooled(), spooled(), spooled()
        async with transactions.alone() as store:
            for mail in (sent, failed, lost):
                await store.queue_mail(mail, NOW)
        outbox.hand_to(handed.extend)
        told = NotificationSent(correlation_id=uuid4(), causation_id=sent.mail_id, kind="k", recipient="a@x.be", subject="s")
        async with transactions.alone() as store:
            await store.mark_sent([sent.mail_id], NOW, [told])
        with pytest.raises(RuntimeError):
            async with transactions() as store:
                await store.publish(told.model_copy(update={"event_id": uuid4()}))
                raise RuntimeError("the transaction fails")
        async with transactions() as store:
            await store.mark_failed(failed.mail_id, "550")
            await store.keep_dead_letter(failed.mail_id, b"{}", {})
        rows = await pool.fetch("SELECT id, message_id FROM notifier.outbox ORDER BY id")
        assert [(r.id, r.message_id) for r in handed] == [tuple(r) for r in rows]
        assert [r.message_id for r in handed] == [told.event_id, failed.mail_id] and woken == []
        nobody_takes = NotifierTransactions(lambda: pool, Outbox("notifier"), unhanded=lambda: woken.append(1))
        async with nobody_takes.alone() as store:
            await store.mark_sent([lost.mail_id], NOW, [told.model_copy(update={"event_id": uuid4()})])
        assert woken == [1]
    finally:
        await pool.close()


async def test_a_new_request_notes_its_recipient_and_reads_her_preference_with_or_without_a_readable_directory(
    database_url: str,
) -> None:
    """Noting who a request is for returns her preference: 'individual' while the directory cannot be read (the
    transaction goes on), hers once it can (one statement), 'individual' for someone it does not have; the recipient
    and title are noted either way; a refusal after that loses the transaction and makes the next read careful again."""
    directory = Directory()
    async with in_rolled_back_transaction(database_url, ("notifier", MIGRATIONS, True)) as conn:
        store = PostgresNotifierStore(conn, Outbox("notifier"), directory)
        first, second, third = schedule(), schedule(), schedule()
        for s in (first, second, third):
            await store.open_schedule(s)
        await conn.execute("DROP SCHEMA IF EXISTS router CASCADE")
        assert await store.note_recipient_preference(first.request_id, "default", BART, "Besluit 1") == "individual"
        assert not directory.readable
        await conn.execute("CREATE SCHEMA router; CREATE TABLE router.people (org text, id text, mails text)")
        await conn.execute("INSERT INTO router.people VALUES ('default', 'bart', 'digest')")
        assert await store.note_recipient_preference(second.request_id, "default", BART, "Besluit 2") == "digest"
        assert directory.readable
        assert await store.note_recipient_preference(third.request_id, "default", SOFIE, "Besluit 3") == "individual"
        noted = await conn.fetch("SELECT person_id, title FROM notifier.reminders ORDER BY title")
        assert [tuple(r) for r in noted] == [("bart", "Besluit 1"), ("bart", "Besluit 2"), ("sofie", "Besluit 3")]
        await conn.execute("DROP TABLE router.people")
        with pytest.raises(asyncpg.UndefinedTableError):
            await store.note_recipient_preference(first.request_id, "default", BART, "Besluit 1")
        assert not directory.readable


async def test_a_new_request_s_schedule_notes_its_recipient_reads_her_preference_and_queues_its_mail_as_it_opens(
    database_url: str,
) -> None:
    """While the directory is in doubt, opening a request's schedule notes nobody and queues nothing (the steps after
    it do); once it was read, the schedule it opens notes recipient and title, returns her preference and queues the
    request's mail unless she asked for digests; a schedule that was there already, or an ended document, notes and
    queues nothing; a refusal loses the transaction and puts the directory in doubt again."""
    directory = Directory()
    async with in_rolled_back_transaction(database_url, ("notifier", MIGRATIONS, True)) as conn:
        store = PostgresNotifierStore(conn, Outbox("notifier"), directory)
        doubted, digest, individual, there, late = schedule(), schedule(), schedule(), schedule(), schedule()
        mails = {s.request_id: spooled(s.document_id, s.request_id) for s in (doubted, digest, individual, there, late)}

        async def opened(s: Schedule, person: PersonRef, title: str) -> tuple:
            return await store.schedule_for_request(s, person, title, mails[s.request_id], NOW)

        await conn.execute("DROP SCHEMA IF EXISTS router CASCADE")
        assert await opened(doubted, BART, "Besluit 0") == (False, doubted, None, False)
        await conn.execute("CREATE SCHEMA router; CREATE TABLE router.people (org text, id text, mails text)")
        await conn.execute("INSERT INTO router.people VALUES ('default', 'bart', 'digest')")
        assert await store.mail_preference("default", "bart") == "digest" and directory.readable
        assert await opened(digest, BART, "Besluit 1") == (False, digest, "digest", False)
        assert await opened(individual, SOFIE, "Besluit 2") == (False, individual, "individual", True)
        await store.open_schedule(there)
        assert await opened(there, BART, "Besluit 3") == (False, there, None, False)
        await store.end_document(late.document_id, "default", "withdrawn", NOW)
        assert await opened(late, BART, "Besluit 4") == (True, None, None, False)
        noted = await conn.fetch("SELECT person_id, recipient, title FROM notifier.reminders WHERE person_id IS NOT NULL ORDER BY title")
        assert [(r["person_id"], PersonRef.model_validate(r["recipient"]), r["title"]) for r in noted] == [
            ("bart", BART, "Besluit 1"), ("sofie", SOFIE, "Besluit 2"),
        ]
        queued = mails[individual.request_id]
        assert await store.mail(queued.mail_id) == replace(queued, created_at=NOW, next_attempt_at=NOW)
        assert await conn.fetchval("SELECT count(*) FROM notifier.mails") == 1
        await conn.execute("DROP TABLE router.people")
        with pytest.raises(asyncpg.UndefinedTableError):
            await store.schedule_for_request(schedule(), BART, "Besluit 5", spooled(), NOW)
        assert not directory.readable


async def test_the_directory_is_read_without_a_savepoint_once_it_was_read_and_with_one_again_after_a_refusal(database_url: str) -> None:
    """No directory: 'individual' and the transaction goes on. Then a read succeeds and the next goes without a
    savepoint; when that one is refused the transaction is lost, and the process's next read takes a savepoint again."""
    directory = Directory()
    async with in_rolled_back_transaction(database_url, ("notifier", MIGRATIONS, True)) as conn:
        store = PostgresNotifierStore(conn, Outbox("notifier"), directory)
        await conn.execute("DROP SCHEMA IF EXISTS router CASCADE")
        assert await store.mail_preference("default", "bart") == "individual" and not directory.readable
        await conn.execute("CREATE SCHEMA router; CREATE TABLE router.people (org text, id text, mails text)")
        await conn.execute("INSERT INTO router.people VALUES ('default', 'bart', 'digest')")
        assert await store.mail_preference("default", "bart") == "digest" and directory.readable
        await conn.execute("DROP TABLE router.people")
        with pytest.raises(asyncpg.UndefinedTableError):
            await store.mail_preference("default", "bart")
        assert not directory.readable
