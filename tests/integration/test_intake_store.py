"""One contract, two stores: the in-memory FakeIntakeStore the unit tests use behaves as PostgresIntakeStore does."""

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from uuid import uuid4

import pytest

from services.intake import handlers
from services.intake.domain import SourcePolicy, Submission, examine
from services.intake.pdf import Limits
from services.intake.store import Document, IntakeStore, PostgresIntakeStore, Rejection
from shared import blobs
from shared.blobs import BlobNotFound
from shared.contract import Outcome
from shared.db import connect_pool, migrate
from shared.events import StepSpec
from shared.messaging import Outbox
from tests.support.fakes.intake import FakeIntakeStore
from tests.support.pdfs import make_pdf
from tests.support.stores import in_rolled_back_transaction
from tests.support.system import submission

MIGRATIONS = Path(__file__).resolve().parents[2] / "services" / "intake" / "migrations"


@pytest.fixture(params=["fake", "postgres"])
async def store(request: pytest.FixtureRequest, database_url: str) -> AsyncIterator[IntakeStore]:
    if request.param == "fake":
        yield FakeIntakeStore()
        return
    async with in_rolled_back_transaction(database_url, ("blobs", blobs.MIGRATIONS, False), ("intake", MIGRATIONS, True)) as conn:
        yield PostgresIntakeStore(conn, Outbox("intake"))


def document(**changes: object) -> Document:
    fields = dict(document_id=uuid4(), org="default", source="notula", external_ref="R-1", title="Besluit",
                  submitted_by="elen", filename="b.pdf", pdf_sha256="0" * 64, steps=(StepSpec(signers=["person:ann"]),),
                  metadata={"k": "v"})
    return Document(**{**fields, **changes})  # type: ignore[arg-type]


async def test_sources_are_registered_changed_listed_and_removed(store: IntakeStore) -> None:
    """Registering tells whether the source is new; changing keeps one row; removing works once."""
    policy = SourcePolicy("notula", "default", flows=frozenset({"college"}), submitters=None, ad_hoc_steps=True)
    assert await store.upsert_source(policy) is True
    assert await store.upsert_source(SourcePolicy("notula", "default")) is False
    assert await store.source_policy("notula") == SourcePolicy("notula", "default")
    assert [p.source for p in await store.sources()] == ["notula"]
    assert await store.delete_source("notula") and not await store.delete_source("notula")
    assert await store.source_policy("notula") is None


async def test_pdfs_are_stored_once_and_versions_belong_to_their_document_and_org(store: IntakeStore) -> None:
    """The same bytes give the same digest; versions come back in revision order, for the right org only."""
    first, again = await store.put_pdf(b"%PDF-1 one"), await store.put_pdf(b"%PDF-1 one")
    signed = await store.put_pdf(b"%PDF-1 two")
    assert first == again and await store.pdf(first) == b"%PDF-1 one"
    with pytest.raises(BlobNotFound):
        await store.pdf("f" * 64)
    document_id = uuid4()
    await store.register_version(document_id, 1, "default", signed)
    await store.register_version(document_id, 0, "default", first)
    assert await store.version_digests(document_id, "default") == [first, signed]
    assert await store.version_digests(document_id, "othercity") == []


async def test_a_document_is_found_by_its_reference_and_its_status_moves(store: IntakeStore) -> None:
    """A stored document reads back by (org, source, ref); a new status and signed PDF stick; an unknown document is None."""
    original = document(pdf_sha256=await store.put_pdf(b"%PDF-1 x"))
    await store.insert_document(original)
    assert await store.find_document("default", "notula", "R-1") == original
    assert await store.find_document("othercity", "notula", "R-1") is None
    moved = await store.set_status(original.document_id, "completed", signed_sha256="1" * 64)
    assert (moved.status, moved.reason, moved.signed_sha256) == ("completed", None, "1" * 64)
    assert await store.set_status(uuid4(), "completed") is None


async def test_a_document_added_with_its_pdf_keeps_the_pdf_as_its_first_version(store: IntakeStore) -> None:
    """One call stores the PDF, the document and the PDF as its revision 0."""
    original = document(pdf_sha256=blobs.sha256_hex(b"%PDF-1 first"))
    await store.add_document(original, b"%PDF-1 first")
    assert await store.find_document("default", "notula", "R-1") == original
    assert await store.pdf(original.pdf_sha256) == b"%PDF-1 first"
    assert await store.version_digests(original.document_id, "default") == [original.pdf_sha256]


async def test_a_document_added_for_a_reference_that_has_one_adds_nothing_and_gives_that_one(store: IntakeStore) -> None:
    """Added again under the same reference (another id, another PDF), the stored document comes back and nothing of
    the second is kept: no document, no version, no PDF."""
    original = document(pdf_sha256=blobs.sha256_hex(b"%PDF-1 first"))
    assert await store.add_document(original, b"%PDF-1 first") is None
    again = replace(original, document_id=uuid4(), pdf_sha256=blobs.sha256_hex(b"%PDF-1 second"))
    assert await store.add_document(again, b"%PDF-1 second") == original
    assert await store.find_document("default", "notula", "R-1") == original
    assert await store.version_digests(again.document_id, "default") == []
    with pytest.raises(BlobNotFound):
        await store.pdf(again.pdf_sha256)


async def test_a_document_completes_only_with_one_of_its_own_versions_and_gives_its_pdf(store: IntakeStore) -> None:
    """Completing with a PDF that is no version of the document (or of another org) changes nothing; with a
    version, the document moves to completed and the version's bytes come back with it."""
    original = document(pdf_sha256=blobs.sha256_hex(b"%PDF-1 first"))
    await store.add_document(original, b"%PDF-1 first")
    signed = await store.put_pdf(b"%PDF-1 signed")
    assert await store.complete(original.document_id, "default", signed) == (None, None)
    await store.register_version(original.document_id, 1, "default", signed)
    assert await store.complete(original.document_id, "othercity", signed) == (None, None)
    assert (await store.find_document("default", "notula", "R-1")).status == "submitted"
    pdf, completed = await store.complete(original.document_id, "default", signed)
    assert pdf == b"%PDF-1 signed"
    assert (completed.status, completed.signed_sha256) == ("completed", signed)
    assert await store.complete(uuid4(), "default", signed) == (None, None)


async def test_refusals_and_their_originals_are_kept_with_their_answer(store: IntakeStore) -> None:
    """A rejection row, its kept original and its outcome all land (rows, or the fake's lists)."""
    rejection = Rejection(uuid4(), "default", "notula", "R-9", "invalid_json", "not JSON")
    await store.insert_rejection(rejection)
    await store.keep_refused(rejection.id, b"{nope", {"x-paraaf-code": "invalid_json"})
    await store.publish(Outcome(source="notula", external_ref="R-9", document_id=None, status="rejected", code="invalid_json"))
    if isinstance(store, FakeIntakeStore):
        assert store.rejections == [rejection] and store.refused[0][1] == b"{nope" and len(store.published) == 1
    else:
        conn = store._conn
        assert await conn.fetchval("SELECT code FROM intake.rejections WHERE id = $1", rejection.id) == "invalid_json"
        rows = await conn.fetch("SELECT exchange, routing_key, body FROM intake.outbox ORDER BY id")
        assert [(r["exchange"], r["routing_key"]) for r in rows] == [("esign.dlx", "intake.rejected"), ("esign.outcomes", "notula.rejected")]
        assert rows[0]["body"] == b"{nope"


async def test_two_submissions_of_one_reference_handled_at_once_are_answered_as_one_after_the_other(database_url: str) -> None:
    """A source sends one reference twice, the second time with another PDF, and both are taken at the same moment
    (two intake processes, or one with several messages in hand): one document, and the other answered
    `duplicate_ref`, as if they had come one after the other; neither fails into a redelivery."""
    first, second = (json.dumps(submission(make_pdf(text=text), external_ref="TWICE-1")).encode() for text in ("one", "two"))
    pool = await connect_pool(database_url)
    try:
        await migrate(pool, "blobs", [blobs.MIGRATIONS], messaging=False)
        await migrate(pool, "intake", [MIGRATIONS], messaging=True)
        async with pool.acquire() as conn:
            await PostgresIntakeStore(conn, Outbox("intake")).upsert_source(SourcePolicy("notula", "default", ad_hoc_steps=True))

        async def handle(raw: bytes) -> Document | Rejection:
            examined = examine(Submission("submit.notula", raw, "notula"), Limits(1_048_576))
            async with pool.acquire() as conn, conn.transaction():
                return await handlers.on_submission(examined, PostgresIntakeStore(conn, Outbox("intake")))

        made = await asyncio.gather(handle(first), handle(second))
        assert sorted(type(m).__name__ for m in made) == ["Document", "Rejection"]
        assert next(m for m in made if isinstance(m, Rejection)).code == "duplicate_ref"
        assert await pool.fetchval("SELECT count(*) FROM intake.documents WHERE external_ref = 'TWICE-1'") == 1
    finally:
        await pool.close()
