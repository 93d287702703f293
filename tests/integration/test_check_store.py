"""The check page's PostgreSQL side: wrong pairs counted exactly by many connections at once (as by several signer
processes), a right pair given back, and a code that finds its document only with its own secret."""

import asyncio
from datetime import timedelta
from pathlib import Path
from uuid import uuid4

import asyncpg
import pytest

from services.signer import check
from services.signer.check import CheckLimits
from services.signer.domain import request_from
from services.signer.store import PostgresSignerStore
from services.signer.verification import code_key, new_code, secret_hash
from shared.blobs import MIGRATIONS as BLOB_MIGRATIONS
from shared.db import connect_pool, migrate
from shared.events import PersonRef, SignatureRequested
from shared.messaging import Outbox

SERVICES = Path(__file__).resolve().parents[2] / "services"
ANN = PersonRef(id="ann.aerts", name="Ann Aerts", email="ann.aerts@demo.paraaf.be", title="algemeen directeur")
ELEN = PersonRef(id="elen.elaut", name="Elen Elaut", email="elen.elaut@demo.paraaf.be")
KEY = code_key(b"an installation secret for tests")


@pytest.fixture
async def pool(database_url: str) -> asyncpg.Pool:
    pool = await connect_pool(database_url, max_size=8)
    schemas = (("blobs", BLOB_MIGRATIONS, False), ("router", SERVICES / "router" / "migrations", True),
               ("signer", SERVICES / "signer" / "migrations", True))
    for schema, directory, messaging in schemas:
        await migrate(pool, schema, [directory], messaging=messaging)
    yield pool
    await pool.close()


async def test_thirty_attempts_at_once_from_eight_connections_let_exactly_the_limit_through(pool: asyncpg.Pool) -> None:
    """With 10 allowed per address, 30 simultaneous attempts on 8 connections: exactly 10 are judged, 20 refused;
    another address is still judged; a right pair (forgiven) leaves room for one more."""
    limits = CheckLimits(per_address=10, overall=100, window=timedelta(minutes=15))

    async def one(scope: str) -> check.Attempt:
        async with pool.acquire() as conn:
            return await check.attempt(conn, scope, limits)

    answers = await asyncio.gather(*(one("address:192.0.2.1") for _ in range(30)))
    assert sum(a.limited_until is None for a in answers) == 10
    assert all(a.limited_until is not None for a in answers if a.used > 10)
    assert (await one("address:192.0.2.2")).limited_until is None
    async with pool.acquire() as conn:
        await check.forgive(conn, "address:192.0.2.2", limits)
        assert (await check.attempt(conn, "address:192.0.2.2", limits)).used == 1


async def test_everyones_limit_closes_the_page_for_a_new_address_too(pool: asyncpg.Pool) -> None:
    """Past the overall limit, an address that never tried is refused as well."""
    limits = CheckLimits(per_address=10, overall=5)
    async with pool.acquire() as conn:
        for n in range(5):
            assert (await check.attempt(conn, f"address:198.51.100.{n}", limits)).limited_until is None
        assert (await check.attempt(conn, "address:198.51.100.99", limits)).limited_until is not None


async def test_a_code_finds_its_document_only_with_its_own_secret(pool: asyncpg.Pool) -> None:
    """The right secret (hashed under the key) finds title, status and signer; a wrong secret, another code or
    another installation's key find nothing."""
    async with pool.acquire() as conn:
        store = PostgresSignerStore(conn, Outbox("signer"))
        document_id = uuid4()
        digest = await store.put_blob(b"%PDF " + document_id.bytes)
        await store.begin_document(document_id, "default", digest)
        await store.insert_request(request_from(SignatureRequested(
            correlation_id=document_id, request_id=uuid4(), step=1, step_count=1, signer=ANN, title="Besluit 7",
            filename="besluit-7.pdf", submitted_by=ELEN, pdf_sha256=digest, signature_count=1,
        )))
        code = new_code()
        assert await store.register_verification_code(document_id, "default", code, secret_hash(KEY, code, "K7QXM2PA"))
        assert not await store.register_verification_code(uuid4(), "default", code, b"taken")
        found = await check.find(conn, KEY, code, "K7QXM2PA")
        assert found is not None and (found.title, found.status, found.hidden) == ("Besluit 7", "active", False)
        assert await check.find(conn, KEY, code, "K7QXM2PB") is None
        assert await check.find(conn, KEY, new_code(), "K7QXM2PA") is None
        assert await check.find(conn, code_key(b"another installation secret"), code, "K7QXM2PA") is None
