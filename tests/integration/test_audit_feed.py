"""The live stream's feed against a real PostgreSQL: the audit log's statement trigger
notifies once per INSERT (one entry or a batch), the feed wakes its streams on that
notification rather than on its poll, and a stream further behind than the feed
keeps reads the log itself, with the same entries."""

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import pytest

from services.signer.live import CHANNEL, AuditFeed
from tests.support.audit_log import record
from tests.support.waiting import eventually


@pytest.fixture
async def feed(audit_pool: asyncpg.Pool, database_url: str) -> AsyncIterator[AuditFeed]:
    """A feed that polls only every 30 s: within a test, only a notification wakes it."""
    feed = AuditFeed(lambda: asyncpg.connect(database_url), poll=30.0, keep=4)
    running = asyncio.create_task(feed.run())
    await asyncio.wait_for(feed.listening.wait(), 10)
    yield feed
    waiting = feed.grew
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    assert feed.closed and waiting.is_set(), "a stopped feed ends every stream"


async def test_one_insert_of_several_entries_is_one_notification_with_the_highest_seq(audit_pool: asyncpg.Pool, database_url: str) -> None:
    """A batched append (one INSERT of three rows) notifies once, naming seq 3; a single append notifies with its seq."""
    heard: list[str] = []
    listener = await asyncpg.connect(database_url)
    await listener.add_listener(CHANNEL, lambda *args: heard.append(args[3]))
    try:
        now = datetime.now(UTC)
        await audit_pool.execute(
            "INSERT INTO audit.log (seq, event_id, routing_key, org, occurred_at, payload, prev_hash, hash)"
            " SELECT n, gen_random_uuid(), 'document.submitted', 'default', $1, '{\"event\":{}}', '', '' FROM generate_series(1, 3) n",
            now,
        )
        await audit_pool.execute("UPDATE audit.head SET seq = 3")
        await record(audit_pool, 1)
        await eventually(lambda: asyncio.sleep(0, len(heard) >= 2), "both notifications")
        await asyncio.sleep(0.3)  # and no third one
    finally:
        await listener.close()
    assert heard == ["3", "4"]


async def test_the_feed_wakes_its_streams_on_the_notification_and_hands_them_what_is_new(
    feed: AuditFeed, audit_pool: asyncpg.Pool
) -> None:
    """A stream waiting on ``grew`` is woken well before the 30 s poll, and ``after`` gives exactly the new entries."""
    start = await feed.latest(audit_pool)
    grew = feed.grew
    began = time.monotonic()
    await record(audit_pool, 2)
    await asyncio.wait_for(grew.wait(), 5)
    print(f"\nfeed woke {time.monotonic() - began:.3f} s after the commit")
    while len(entries := await feed.after(audit_pool, start)) < 2:  # two commits: maybe two wakes
        grew = feed.grew
        if len(await feed.after(audit_pool, start)) < 2:
            await asyncio.wait_for(grew.wait(), 5)
    assert [e.seq for e in entries] == [start + 1, start + 2]
    assert (await feed.after(audit_pool, start + 1))[0].event["n"] == 1
    assert await feed.after(audit_pool, start + 2) == []


async def test_a_stream_behind_what_the_feed_keeps_reads_the_log_and_gets_the_same_entries(
    feed: AuditFeed, audit_pool: asyncpg.Pool
) -> None:
    """The feed keeps 4 entries; after 6 more, a stream at the start reads all 6 from the log, one near the end from memory."""
    start = await feed.latest(audit_pool)
    for _ in range(6):
        grew = feed.grew
        await record(audit_pool, 1)
        await asyncio.wait_for(grew.wait(), 5)
    from_log = await feed.after(audit_pool, start)
    from_memory = await feed.after(audit_pool, start + 3)
    assert [e.seq for e in from_log] == list(range(start + 1, start + 7))
    assert [(e.seq, e.payload) for e in from_memory] == [(e.seq, e.payload) for e in from_log[3:]]


async def test_without_notifications_the_feed_still_finds_new_entries_by_polling(audit_pool: asyncpg.Pool, database_url: str) -> None:
    """With the log's trigger gone (a notification lost), a feed polling every 0.3 s still wakes its streams."""
    await audit_pool.execute("DROP TRIGGER log_notify ON audit.log")
    feed = AuditFeed(lambda: asyncpg.connect(database_url), poll=0.3)
    running = asyncio.create_task(feed.run())
    try:
        await asyncio.sleep(0.5)
        start, grew = await feed.latest(audit_pool), feed.grew
        await record(audit_pool, 1)
        await asyncio.wait_for(grew.wait(), 2)
        assert [e.seq for e in await feed.after(audit_pool, start)] == [start + 1]
    finally:
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running
