"""The router's handlers on real PostgreSQL: what they record and what they announce (the outbox)."""

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from uuid import uuid4

import asyncpg
import pytest

from services.router import handlers
from services.router.directory import DirectoryCache, add_absence, import_directory
from services.router.importer import read_directory, read_flows, read_workbook
from services.router.scheduler import apply_started_absences
from services.router.store import PostgresRouterStore
from shared.db import connect_pool, migrate
from shared.events import DocumentSubmitted, PersonRef, Signed
from shared.messaging import Outbox
from tests.support.workbook import city_with, write

ROOT = Path(__file__).resolve().parents[2]
JULY_10 = datetime(2026, 7, 10, 7, 0, tzinfo=UTC)


@pytest.fixture
async def pool(database_url: str, tmp_path: Path) -> AsyncIterator[asyncpg.Pool]:
    pool = await connect_pool(database_url)
    await migrate(pool, "router", [ROOT / "services" / "router" / "migrations"])
    directory = read_directory(read_workbook(write(tmp_path / "city.xlsx", city_with())))
    async with pool.acquire() as conn, conn.transaction():
        store = PostgresRouterStore(conn, Outbox("router"))
        await import_directory(store, "default", directory)
        for flow in read_flows(ROOT / "deploy" / "demo" / "flows", directory):
            await store.save_flow("default", flow)
    yield pool
    await pool.close()


async def announced(pool: asyncpg.Pool) -> list[tuple[str, dict]]:
    rows = await pool.fetch("SELECT routing_key, body FROM router.outbox ORDER BY id")
    return [(r["routing_key"], json.loads(r["body"])) for r in rows]


async def run(pool: asyncpg.Pool, work) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await work(PostgresRouterStore(conn, Outbox("router")))


def submitted(**changes: object) -> DocumentSubmitted:
    fields = dict(
        correlation_id=uuid4(), source="notula", external_ref="R-1", title="Collegebesluit 7", flow="collegebesluit",
        submitted_by="elen.elaut", filename="b.pdf", pdf_sha256="a" * 64, pdf_size=10, page_count=1,
    )
    return DocumentSubmitted.model_validate({**fields, **changes})


def signed(requested: dict, revision: int) -> Signed:
    return Signed(
        correlation_id=requested["correlation_id"], request_id=requested["request_id"], step=requested["step"],
        action="sign", signer=PersonRef.model_validate(requested["signer"]), signed_at=JULY_10,
        pdf_sha256=f"{revision}" * 64, revision=revision,
    )


async def test_a_signature_through_the_old_link_before_the_move_counts_and_cancels_the_substitutes_request(pool: asyncpg.Pool) -> None:
    """The director signs in the instant her request moves: her signature counts, the substitute's request is cancelled, and step 2 opens."""
    directories = DirectoryCache()
    event = submitted()
    await run(pool, lambda c: handlers.on_document_submitted(event, c, directories=directories, clock=lambda: JULY_10))
    [(_, first)] = [(k, b) for k, b in await announced(pool) if k == "signature.requested"]
    assert first["signer"]["id"] == "ann.aerts"

    async def leave(store: PostgresRouterStore) -> None:
        await add_absence(store, "default", "ann.aerts", JULY_10, datetime(2026, 7, 20, tzinfo=UTC))
        away = await directories.get(store, "default")
        assert await handlers.move_work_of(store, "default", "ann.aerts", away, JULY_10, absence_id=uuid4()) == 1

    await run(pool, leave)
    moved = [b for k, b in await announced(pool) if k == "signature.requested" and b["replaces"]]
    assert [(m["signer"]["id"], m["on_behalf_of"]["id"]) for m in moved] == [("david.dewit", "ann.aerts")]

    await run(pool, lambda c: handlers.on_signed(signed(first, 1), c, directories=directories, clock=lambda: JULY_10))
    after = await announced(pool)
    cancelled = [b["request_id"] for k, b in after if k == "signature.cancelled"]
    assert cancelled == [moved[0]["request_id"]]
    step_two = [b for k, b in after if k == "signature.requested" and b["step"] == 2]
    assert [(r["signer"]["id"], r["on_behalf_of"]["id"]) for r in step_two] == [("sofie.smet", "bart.baert")]


async def test_a_document_completes_with_the_newest_pdf_even_when_signatures_arrive_out_of_order(pool: asyncpg.Pool) -> None:
    """In a parallel step the later revision wins, whichever signature the router hears first."""
    directories = DirectoryCache()
    event = submitted(flow=None, steps=[{"mode": "all", "signers": ["person:ann.aerts", "person:david.dewit"]}])
    await run(pool, lambda c: handlers.on_document_submitted(event, c, directories=directories, clock=lambda: JULY_10))
    first, second = [b for k, b in await announced(pool) if k == "signature.requested"]
    await run(pool, lambda c: handlers.on_signed(signed(second, 2), c, directories=directories, clock=lambda: JULY_10))
    await run(pool, lambda c: handlers.on_signed(signed(first, 1), c, directories=directories, clock=lambda: JULY_10))
    [completed] = [b for k, b in await announced(pool) if k == "document.completed"]
    assert completed["pdf_sha256"] == "2" * 64
    assert len(completed["signatures"]) == 2


async def test_an_ad_hoc_document_is_planned_on_the_directory_as_it_is_even_when_it_changed_since_the_last_read(
    pool: asyncpg.Pool,
) -> None:
    """The router plans a new ad-hoc document on the directory it last read only while that still is the directory:
    after an absence moved it, the next document goes to the substitute (stored once, accepted once), as does the one
    after it."""
    directories = DirectoryCache()
    steps = [{"signers": ["person:ann.aerts"]}]
    documents = [submitted(flow=None, steps=steps, external_ref=f"R-{n}") for n in range(3)]
    await run(pool, lambda c: handlers.on_document_submitted(documents[0], c, directories=directories, clock=lambda: JULY_10))
    await run(pool, lambda c: add_absence(c, "default", "ann.aerts", JULY_10, datetime(2026, 7, 20, tzinfo=UTC)))
    for document in documents[1:]:
        await run(pool, lambda c, d=document: handlers.on_document_submitted(d, c, directories=directories, clock=lambda: JULY_10))
    messages = await announced(pool)
    requested = [(b["correlation_id"], b["signer"]["id"], (b["on_behalf_of"] or {}).get("id")) for k, b in messages if k == "signature.requested"]
    ids = [str(d.document_id) for d in documents]
    assert requested == [(ids[0], "ann.aerts", None), (ids[1], "david.dewit", "ann.aerts"), (ids[2], "david.dewit", "ann.aerts")]
    assert [b["correlation_id"] for k, b in messages if k == "document.accepted"] == ids
    stored = await pool.fetch("SELECT document_id, current_step FROM router.instances ORDER BY created_at")
    assert [(str(r["document_id"]), r["current_step"]) for r in stored] == [(i, 1) for i in ids]


async def _waiting_for_a_lock(pool: asyncpg.Pool, conn: asyncpg.Connection) -> None:
    """Until the backend of ``conn`` waits for a row lock (polled in pg_stat_activity, not timed)."""
    pid = conn.get_server_pid()
    while await pool.fetchval("SELECT wait_event_type FROM pg_stat_activity WHERE pid = $1", pid) != "Lock":
        await asyncio.sleep(0.05)


async def test_an_absence_applied_in_one_router_while_another_handles_the_document_locks_in_the_same_order(
    pool: asyncpg.Pool,
) -> None:
    """Router replicas: while one holds a document (handling a signature on it), the other applying an absence
    waits for the document before it takes the absent signer's request, so the first can still take that request:
    both finish, instead of each waiting for the other until PostgreSQL kills one as a deadlock."""
    directories = DirectoryCache()
    event = submitted()
    await run(pool, lambda c: handlers.on_document_submitted(event, c, directories=directories, clock=lambda: JULY_10))
    [first] = [b for k, b in await announced(pool) if k == "signature.requested"]
    await run(pool, lambda c: add_absence(c, "default", "ann.aerts", JULY_10, datetime(2026, 7, 20, tzinfo=UTC)))

    async with pool.acquire() as handling, pool.acquire() as applying:
        async with handling.transaction():
            await handling.execute("SELECT 1 FROM router.instances WHERE document_id = $1 FOR UPDATE", event.document_id)

            async def apply() -> int:
                async with applying.transaction():
                    return await apply_started_absences(PostgresRouterStore(applying, Outbox("router")), directories, JULY_10)

            applied = asyncio.create_task(apply())
            await asyncio.wait_for(_waiting_for_a_lock(pool, applying), 30)
            await handling.execute("SELECT 1 FROM router.requests WHERE request_id = $1 FOR UPDATE NOWAIT", first["request_id"])
        assert await asyncio.wait_for(applied, 30) == 1
