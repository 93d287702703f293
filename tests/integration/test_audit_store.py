"""One contract, two stores: the in-memory FakeAuditStore chains exactly as PostgresAuditStore does."""

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from uuid import uuid4

import pytest

from services.audit.chain import GENESIS, verify_chain
from services.audit.store import AuditStore, KnownHead, PostgresAuditStore
from tests.support.fakes.audit import FakeAuditStore
from tests.support.stores import in_rolled_back_transaction

MIGRATIONS = Path(__file__).resolve().parents[2] / "services" / "audit" / "migrations"


@pytest.fixture(params=["fake", "postgres"])
async def store(request: pytest.FixtureRequest, database_url: str) -> AsyncIterator[AuditStore]:
    if request.param == "fake":
        yield FakeAuditStore()
        return
    async with in_rolled_back_transaction(database_url, ("audit", MIGRATIONS, True)) as conn:
        yield PostgresAuditStore(conn)


def event(n: int) -> dict:
    return {"event_id": str(uuid4()), "occurred_at": datetime(2026, 3, 2, tzinfo=UTC).isoformat(), "n": n, "b": {"z": 1, "a": 2}}


async def test_appended_events_chain_in_order_and_the_head_follows(store: AuditStore) -> None:
    """Three appends: sequence 1-3, each linked to the one before from the genesis, the head on the last; the chain verifies."""
    assert await store.head() == (0, GENESIS)
    assert [await store.append("document.withdrawn", event(n)) for n in range(3)] == [1, 2, 3]
    rows = [row async for row in store.rows()]
    assert [r[0] for r in rows] == [1, 2, 3] and rows[0][2] == GENESIS and rows[1][2] == rows[0][3]
    assert await store.head() == (3, rows[-1][3])
    assert verify_chain(rows, await store.head()) is None


async def test_many_appended_at_once_follow_the_head_in_the_order_given(store: AuditStore) -> None:
    """Two appends, then three at once: sequence 3-5 in the order given, linked on from entry 2; the chain verifies."""
    await store.append("document.withdrawn", event(0))
    await store.append("document.withdrawn", event(1))
    batch = [event(n) for n in (2, 3, 4)]
    assert await store.append_many([("document.withdrawn", e) for e in batch]) == [3, 4, 5]
    rows = [row async for row in store.rows()]
    assert [json.loads(payload)["event"]["n"] for _, payload, _, _ in rows] == [0, 1, 2, 3, 4]
    assert rows[2][2] == rows[1][3] and await store.head() == (5, rows[-1][3])
    assert verify_chain(rows, await store.head()) is None
    assert await store.append_many([]) == [] and await store.head() == (5, rows[-1][3])


async def test_the_payload_is_canonical_json_whatever_the_key_order(store: AuditStore) -> None:
    """The hashed payload sorts keys, so the same event hashes the same wherever it was written."""
    await store.append("document.withdrawn", event(1))
    [(_, payload, _, _)] = [row async for row in store.rows()]
    assert '"b":{"a":2,"z":1}' in payload and payload.startswith('{"event":')


async def test_a_writer_that_knows_an_old_head_chains_on_from_the_real_one(database_url: str) -> None:
    """Two stores sharing what one process knows of the head, a third writing in between: the first's next append
    finds its head moved, chains on from the real head instead, and the chain verifies without a gap."""
    async with in_rolled_back_transaction(database_url, ("audit", MIGRATIONS, True)) as conn:
        known = KnownHead()
        mine, other = PostgresAuditStore(conn, known), PostgresAuditStore(conn)
        assert await mine.append_many([("document.withdrawn", event(n)) for n in (0, 1)]) == [1, 2]
        assert await other.append("document.withdrawn", event(2)) == 3
        assert await mine.append_many([("document.withdrawn", event(n)) for n in (3, 4)]) == [4, 5]
        rows = [row async for row in mine.rows()]
        assert [json.loads(payload)["event"]["n"] for _, payload, _, _ in rows] == [0, 1, 2, 3, 4]
        assert verify_chain(rows, await mine.head()) is None and known.seq_hash == await mine.head()
