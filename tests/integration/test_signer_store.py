"""One contract, two stores: the in-memory FakeSignerStore the unit tests use behaves as PostgresSignerStore does."""

import asyncio
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID, uuid4

import pytest

from services.signer.domain import SigningLink, SigningRequest, request_from
from services.signer.pades import Placeholder
from services.signer.sessions import Sessions
from services.signer.store import PostgresSignerStore, SignerStore
from services.signer.tokens import hash_token
from shared.blobs import MIGRATIONS as BLOB_MIGRATIONS
from shared.blobs import BlobNotFound
from shared.db import connect_pool
from shared.events import PersonRef, SignatureRequested
from shared.messaging import Outbox
from tests.support.fakes.signer import FakeSignerStore
from tests.support.stores import in_rolled_back_transaction

SERVICES = Path(__file__).resolve().parents[2] / "services"
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
ANN = PersonRef(id="ann", name="Ann Aerts", email="ann@x.be", language="fr", title="schepen")
ELEN = PersonRef(id="elen", name="Elen Elaut", email="elen@x.be")
BOX = Placeholder(1, 0, (10.0, 10.0, 110.0, 60.0))


@dataclass
class Subject:
    """A store under contract, and how to put a person in the router's directory it reads."""

    store: SignerStore
    in_directory: Callable[[PersonRef, str], Awaitable[None]]


@pytest.fixture(params=["fake", "postgres"])
async def subject(request: pytest.FixtureRequest, database_url: str) -> AsyncIterator[Subject]:
    if request.param == "fake":
        fake = FakeSignerStore()

        async def add_to_fake(person: PersonRef, title: str) -> None:
            fake.in_directory("default", person, title)

        yield Subject(fake, add_to_fake)
        return
    schemas = (("blobs", BLOB_MIGRATIONS, False), ("router", SERVICES / "router" / "migrations", True), ("signer", SERVICES / "signer" / "migrations", True))
    async with in_rolled_back_transaction(database_url, *schemas) as conn:

        async def add_to_router(person: PersonRef, title: str) -> None:
            await conn.execute("INSERT INTO router.people (org, id, name, email) VALUES ('default', $1, $2, $3)", person.id, person.name, person.email)
            await conn.execute("INSERT INTO router.roles (org, key, title, holders) VALUES ('default', $1, $1, $2)", title, [person.id])

        yield Subject(PostgresSignerStore(conn, Outbox("signer")), add_to_router)


async def requested(store: SignerStore, step: int = 1, document_id: UUID | None = None) -> SigningRequest:
    """A request stored on a document begun from an accepted PDF."""
    document_id = document_id or uuid4()
    digest = await store.put_blob(b"%PDF " + document_id.bytes)
    await store.begin_document(document_id, "default", digest)
    event = SignatureRequested(
        correlation_id=document_id, request_id=uuid4(), step=step, step_count=2, signer=ANN, title="Besluit",
        filename="besluit.pdf", submitted_by=ELEN, pdf_sha256=digest, signature_count=2,
    )
    await store.insert_request(request_from(event))
    return request_from(event)


async def linked(store: SignerStore, request: SigningRequest, mail_id: UUID | None = None) -> SigningLink:
    token_hash = uuid4().bytes
    await store.insert_token(token_hash, request.request_id, request.signer.id, NOW + timedelta(days=1), mail_id or uuid4())
    return await store.find_link(token_hash)  # type: ignore[return-value]


class TestSignerStore:
    async def test_blobs_and_versions_read_back_in_revision_order(self, subject: Subject) -> None:
        """A PDF is named by its digest; versions list revision 0 first; an unknown digest is not found."""
        store, document_id = subject.store, uuid4()
        first, second = await store.put_blob(b"one"), await store.put_blob(b"two")
        await store.register_version(document_id, 1, "default", second)
        await store.register_version(document_id, 0, "default", first)
        assert await store.version_digests(document_id, "default") == [first, second]
        assert await store.version_digests(document_id, "othercity") == []
        assert await store.blob(second) == b"two"
        with pytest.raises(BlobNotFound):
            await store.blob("0" * 64)

    async def test_a_version_put_at_once_is_its_blob_and_its_revision(self, subject: Subject) -> None:
        """put_version stores the bytes under their digest and lists them as the revision; again, it changes nothing."""
        store, document_id = subject.store, uuid4()
        first = await store.put_version(document_id, 0, "default", b"first")
        assert first == hashlib.sha256(b"first").hexdigest()
        assert await store.put_version(document_id, 1, "default", b"second") != first
        assert await store.put_version(document_id, 1, "default", b"second") == hashlib.sha256(b"second").hexdigest()
        assert [await store.blob(d) for d in await store.version_digests(document_id, "default")] == [b"first", b"second"]

    async def test_the_directory_is_read_with_the_titles_a_person_holds(self, subject: Subject) -> None:
        """A person in the router's directory is found with name and address, and their role titles; others are not."""
        await subject.in_directory(ANN, "schepen")
        person = await subject.store.directory_person("default", "ann")
        assert (person.name, person.email) == ("Ann Aerts", "ann@x.be")
        assert await subject.store.held_titles("default", "ann") == {"schepen"}
        assert await subject.store.directory_person("default", "bart") is None

    async def test_a_request_reads_versions_people_and_titles_together(self, subject: Subject) -> None:
        """request_facts: the document's versions as version_digests reads them, each asked person as directory_person
        reads her (None when absent), and the titles held by ``titles_of`` only (none when she is not in the
        directory, or no one's titles are asked)."""
        store, document_id = subject.store, uuid4()
        await subject.in_directory(ANN, "schepen")
        await subject.in_directory(PersonRef(id="bart", name="Bart Baert", email="bart@x.be"), "burgemeester")
        await store.register_version(document_id, 1, "default", second := await store.put_blob(b"two"))
        await store.register_version(document_id, 0, "default", first := await store.put_blob(b"one"))
        versions, people, titles = await store.request_facts("default", document_id, ["ann", "bart", "nobody"], titles_of="ann")
        assert versions == [first, second] and titles == {"schepen"}
        assert (people["ann"].name, people["ann"].email, people["bart"].name, people["nobody"]) == ("Ann Aerts", "ann@x.be", "Bart Baert", None)
        assert (await store.request_facts("default", document_id, ["bart"])).titles == set()
        assert await store.request_facts("othercity", document_id, ["ann"], titles_of="ann") == ([], {"ann": None}, set())

    async def test_a_document_begins_once_and_keeps_its_first_placeholders(self, subject: Subject) -> None:
        """Beginning twice keeps the first PDF; placeholders are unknown until saved, then kept; the status ends."""
        store, document_id = subject.store, uuid4()
        begun = await store.begin_document(document_id, "default", "a" * 64)
        again = await store.begin_document(document_id, "default", "b" * 64)
        assert (begun.pdf_sha256, again.pdf_sha256, begun.revision, begun.status) == ("a" * 64, "a" * 64, 0, "active")
        assert await store.placeholders_unknown(document_id)
        await store.save_placeholders(document_id, [BOX])
        await store.save_placeholders(document_id, [])
        await store.end_document(document_id, "withdrawn")
        document = await store.document(document_id)
        assert (document.placeholders, document.status, await store.placeholders_unknown(document_id)) == ((BOX,), "withdrawn", False)
        assert await store.document(uuid4()) is None

    async def test_a_request_reads_back_as_stored(self, subject: Subject) -> None:
        """Every field of a request comes back; its filename is the document's."""
        request = await requested(subject.store)
        assert await subject.store.request(request.request_id) == request
        assert await subject.store.document_filename(request.document_id) == "besluit.pdf"
        assert await subject.store.request(uuid4()) is None

    async def test_a_link_carries_its_request_document_and_the_open_steps(self, subject: Subject) -> None:
        """A token is found with its request, document and the steps still open; a new token revokes the earlier."""
        store = subject.store
        first_step = await requested(store)
        second_step = await requested(store, 2, first_step.document_id)
        link = await linked(store, second_step)
        assert (link.request, link.person_id, link.expires_at, link.used_at, link.revoked_at) == (second_step, "ann", NOW + timedelta(days=1), None, None)
        assert (sorted(link.open_steps), link.document.document_id) == ([1, 2], first_step.document_id)
        newer = await linked(store, second_step)
        assert (await store.find_link(link.token_hash)).revoked_at is not None
        assert (await store.find_link(newer.token_hash, lock=True)).revoked_at is None
        assert await store.find_link(b"nobody made this") is None

    async def test_pending_requests_are_cancelled_by_request_or_by_document(self, subject: Subject) -> None:
        """Cancelling by request closes that one; by document the rest; a decided request keeps its state."""
        store = subject.store
        one = await requested(store)
        two, three = await requested(store, 2, one.document_id), await requested(store, 3, one.document_id)
        await store.mark_decided(await linked(store, three), status="declined", at=NOW, reason="nee")
        await store.cancel_pending(request_id=one.request_id, status="reassigned", reason="absent")
        await store.cancel_pending(document_id=one.document_id, reason="the document was withdrawn")
        states = [(r.status, r.status_reason) for r in [await store.request(x.request_id) for x in (one, two, three)]]
        assert states == [("reassigned", "absent"), ("cancelled", "the document was withdrawn"), ("declined", "nee")]

    async def test_a_request_begins_its_document_once(self, subject: Subject) -> None:
        """The first request of a document begins it from the PDF intake accepted; the next finds it as it is; both are stored."""
        store, document_id = subject.store, uuid4()
        first, second = (
            request_from(SignatureRequested(
                correlation_id=document_id, request_id=uuid4(), step=step, step_count=2, signer=ANN, title="Besluit",
                filename="besluit.pdf", submitted_by=ELEN, pdf_sha256="a" * 64,
            ))
            for step in (1, 2)
        )
        begun = await store.begin_request(first, "a" * 64)
        await store.save_placeholders(document_id, [BOX])
        found = await store.begin_request(second, "b" * 64)
        assert (begun.pdf_sha256, begun.placeholders, found.pdf_sha256, found.placeholders) == ("a" * 64, None, "a" * 64, (BOX,))
        assert [await store.request(r.request_id) for r in (first, second)] == [first, second]

    async def test_a_document_that_ends_cancels_its_pending_requests(self, subject: Subject) -> None:
        """Its open requests are cancelled, saying why; one already signed, and another document's, stay as they were."""
        store = subject.store
        one = await requested(store)
        two, other = await requested(store, 2, one.document_id), await requested(store)
        await store.mark_decided(await linked(store, one), status="signed", at=NOW)
        await store.end_document(one.document_id, "withdrawn")
        states = [(r.status, r.status_reason) for r in [await store.request(x.request_id) for x in (one, two, other)]]
        assert states == [("signed", None), ("cancelled", "the document was withdrawn"), ("pending", None)]
        assert (await store.document(one.document_id)).status == "withdrawn"

    async def test_a_signature_moves_the_document_on_and_spends_the_link(self, subject: Subject) -> None:
        """The new version is stored and kept with the first placeholders, the request signed with its field, the token
        used; signed_before lists it."""
        store = subject.store
        request = await requested(store)
        link = await linked(store, request)
        digest = await store.record_signature(link, pdf=b"signed", revision=1, placeholders=[BOX], field_name="Signature1", at=NOW)
        document, signed = await store.document(request.document_id), await store.request(request.request_id)
        assert digest == hashlib.sha256(b"signed").hexdigest()
        assert (document.pdf_sha256, document.revision, document.placeholders) == (digest, 1, (BOX,))
        assert await store.version_digests(request.document_id, "default") == [digest]
        assert await store.blob(digest) == b"signed"
        assert (signed.status, signed.field_name, signed.decided_at) == ("signed", "Signature1", NOW)
        assert (await store.find_link(link.token_hash)).used_at == NOW
        assert [r.request_id for r in await store.signed_before(request.document_id)] == [request.request_id]

    async def test_signed_before_lists_signatures_first_signed_first(self, subject: Subject) -> None:
        """Two approvals recorded out of order come back in the order they were made, also with a link of the document
        (as its signing page reads them), whole."""
        store = subject.store
        first = await requested(store)
        second = await requested(store, 2, first.document_id)
        await store.mark_decided(await linked(store, second), status="signed", at=NOW + timedelta(hours=1))
        await store.mark_decided(await linked(store, first), status="signed", at=NOW)
        assert [r.step for r in await store.signed_before(first.document_id)] == [1, 2]
        third = await linked(store, await requested(store, 3, first.document_id))
        link, signed = await store.find_link_and_signed(third.token_hash)
        assert (link, signed) == (third, await store.signed_before(first.document_id))
        assert await store.find_link_and_signed(b"nobody made this") == (None, [])

    async def test_a_download_needs_a_grant_and_a_new_one_revokes_the_last(self, subject: Subject) -> None:
        """Without a grant no link is made; with one the link carries the grant's PDF and name; the next revokes it."""
        store, document_id = subject.store, uuid4()
        made = dict(document_id=document_id, person_id="elen", expires_at=NOW, mail_id=uuid4())
        assert not await store.insert_download(b"d-0", **made)  # type: ignore[arg-type]
        await store.grant_download(document_id=document_id, org="default", person_id="elen", pdf_sha256="e" * 64, filename="b.pdf")
        await store.grant_download(document_id=document_id, org="default", person_id="elen", pdf_sha256="f" * 64, filename="x.pdf")
        assert await store.insert_download(b"d-1", **made)  # type: ignore[arg-type]
        assert await store.insert_download(b"d-2", **made)  # type: ignore[arg-type]
        first, second = await store.find_download(b"d-1"), await store.find_download(b"d-2")
        assert (second.pdf_sha256, second.filename, second.org, second.expires_at, second.revoked_at) == ("e" * 64, "b.pdf", "default", NOW, None)
        assert first.revoked_at is not None and await store.find_download(b"d-0") is None

    async def test_a_download_granted_without_a_filename_takes_the_documents(self, subject: Subject) -> None:
        """No filename given: the download is named as the document's requests name it, or document.pdf without any."""
        store, request, lone = subject.store, await requested(subject.store), uuid4()
        await store.grant_download(document_id=request.document_id, org="default", person_id="elen", pdf_sha256="e" * 64)
        await store.grant_download(document_id=lone, org="default", person_id="elen", pdf_sha256="e" * 64)
        for token_hash, document_id in ((b"named", request.document_id), (b"unnamed", lone)):
            await store.insert_download(token_hash, document_id=document_id, person_id="elen", expires_at=NOW, mail_id=uuid4())
        assert [(await store.find_download(t)).filename for t in (b"named", b"unnamed")] == ["besluit.pdf", "document.pdf"]

    async def test_the_links_of_a_failed_mail_are_revoked(self, subject: Subject) -> None:
        """Signing and download links made for the mail are revoked; those of another mail are not."""
        store, mail_id = subject.store, uuid4()
        request = await requested(store)
        failed, other = await linked(store, request, mail_id), await linked(store, await requested(store))
        await store.grant_download(document_id=request.document_id, org="default", person_id="elen", pdf_sha256="e" * 64, filename="b.pdf")
        await store.insert_download(b"d-1", document_id=request.document_id, person_id="elen", expires_at=NOW, mail_id=mail_id)
        await store.revoke_links_of_mail(mail_id)
        assert (await store.find_link(failed.token_hash)).revoked_at is not None
        assert (await store.find_download(b"d-1")).revoked_at is not None
        assert (await store.find_link(other.token_hash)).revoked_at is None


async def test_a_mail_sent_meanwhile_retires_the_earlier_mailed_link_but_not_the_one_the_portal_made(database_url: str) -> None:
    """A bulk run (or "Read and sign") signs with a link the portal made; the request's mail, sent in the meantime,
    retires the earlier mailed link only, so the run does not fail on a link nobody replaced."""
    schemas = (("blobs", BLOB_MIGRATIONS, False), ("router", SERVICES / "router" / "migrations", True), ("signer", SERVICES / "signer" / "migrations", True))
    async with in_rolled_back_transaction(database_url, *schemas) as conn:
        store = PostgresSignerStore(conn, Outbox("signer"))
        request = await requested(store)
        mailed = await linked(store, request)
        portal = await Sessions(conn).signing_link_for(request.request_id, "ann", NOW)
        newer = await linked(store, request)
        assert (await store.find_link(mailed.token_hash)).revoked_at is not None  # type: ignore[union-attr]
        assert (await store.find_link(hash_token(portal))).revoked_at is None  # type: ignore[union-attr]
        assert newer.revoked_at is None


async def test_a_stored_pdf_version_is_compressed_with_lz4(database_url: str) -> None:
    """A version's bytes (a signed PDF is mostly the signatures' reserved zeros) are kept compressed with lz4, which
    costs PostgreSQL a quarter of the CPU of its default pglz (bench.blobs), and read back as they were."""
    signed = b"%PDF-1.7\n" + b"/Contents <" + b"0" * 60_000 + b">\n" + bytes(range(256)) * 40
    async with in_rolled_back_transaction(database_url, ("blobs", BLOB_MIGRATIONS, False)) as conn:
        digest = await PostgresSignerStore(conn, Outbox("signer")).put_blob(signed)
        method = await conn.fetchval("SELECT pg_column_compression(data) FROM blobs.blob WHERE sha256 = $1", digest)
        assert (method, await PostgresSignerStore(conn, Outbox("signer")).blob(digest)) == ("lz4", signed)


async def test_two_requests_of_a_document_whose_placeholders_are_unknown_take_turns_instead_of_deadlocking(
    database_url: str,
) -> None:
    """Two signature.requested handlers of one document, each with its request inserted (which holds a key-share lock
    on the document row, for the foreign key): the first to ask whether the placeholders are still unknown is told so
    at once; the other waits for it to commit, then is told they are known. Asked FOR UPDATE, each waited for the
    other's key-share lock, and PostgreSQL killed one (DeadlockDetectedError; the message went round again)."""
    schemas = (("blobs", BLOB_MIGRATIONS, False), ("signer", SERVICES / "signer" / "migrations", True))
    async with in_rolled_back_transaction(database_url, *schemas):
        pass  # migrated; committed rows are needed here, across connections
    pool = await connect_pool(database_url)
    try:
        document_id = uuid4()
        async with pool.acquire() as conn:
            store = PostgresSignerStore(conn, Outbox("signer"))
            await store.begin_document(document_id, "default", await store.put_blob(b"%PDF " + document_id.bytes))
        async with pool.acquire() as first, pool.acquire() as second:
            handlers = [(conn.transaction(), PostgresSignerStore(conn, Outbox("signer"))) for conn in (first, second)]
            for (transaction, store), step in zip(handlers, (1, 2), strict=True):
                await transaction.start()
                await store.insert_request(_request_of(document_id, step))
            (first_transaction, first_store), (second_transaction, second_store) = handlers
            assert await asyncio.wait_for(first_store.placeholders_unknown(document_id), 5)
            waiting = asyncio.create_task(second_store.placeholders_unknown(document_id))
            async with pool.acquire() as watcher:  # until the second's query is at PostgreSQL, waiting for a lock
                blocked, pid = "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $1", second.get_server_pid()
                for _ in range(500):
                    if waiting.done() or await watcher.fetchval(blocked, pid):
                        break
                    await asyncio.sleep(0.01)
                assert not waiting.done(), "the second looks while the first is still looking"
                assert await watcher.fetchval(blocked, pid), "the second waits for the first's lock"
            await first_store.save_placeholders(document_id, [])
            await first_transaction.commit()
            assert await asyncio.wait_for(waiting, 5) is False
            await second_transaction.commit()
    finally:
        await pool.close()


def _request_of(document_id: UUID, step: int) -> SigningRequest:
    return request_from(SignatureRequested(
        correlation_id=document_id, request_id=uuid4(), step=step, step_count=2, signer=ANN, title="Besluit",
        filename="besluit.pdf", submitted_by=ELEN, pdf_sha256="0" * 64, signature_count=2,
    ))
