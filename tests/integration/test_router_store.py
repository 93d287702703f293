"""One contract, two stores: the in-memory FakeRouterStore the unit tests use behaves as PostgresRouterStore does."""

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import uuid4

import pytest

from services.router.domain import Absence, Directory, FlowDefinition, Group, Instance, Person, Request, Role, with_signature
from services.router.store import PostgresRouterStore, RouterStore
from shared.events import DocumentWithdrawn, PersonRef, SignatureRecord, StepSpec
from shared.messaging import Outbox
from tests.support.fakes.router import FakeRouterStore
from tests.support.stores import in_rolled_back_transaction

MIGRATIONS = Path(__file__).resolve().parents[2] / "services" / "router" / "migrations"
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
ANN = PersonRef(id="ann", name="Ann Aerts", email="ann@x.be")
DIRECTORY = Directory(
    people={"ann": Person("ann", "Ann Aerts", "ann@x.be", "Secretariaat"), "bart": Person("bart", "Bart Baert", "bart@x.be")},
    roles={"burgemeester": Role("burgemeester", "burgemeester", ("bart",))},
    substitutes={"bart": ("ann",)},
    absences={"bart": (Absence("bart", NOW, NOW + timedelta(days=5)),)},
    groups={"bestuur": Group("bestuur", ("Secretariaat",))},
)


@pytest.fixture(params=["fake", "postgres"])
async def store(request: pytest.FixtureRequest, database_url: str) -> AsyncIterator[RouterStore]:
    if request.param == "fake":
        yield FakeRouterStore()
        return
    async with in_rolled_back_transaction(database_url, ("router", MIGRATIONS, True)) as conn:
        yield PostgresRouterStore(conn, Outbox("router"))


def instance(**changes: object) -> Instance:
    fields = dict(
        document_id=uuid4(),
        org="default",
        title="Besluit",
        filename="b.pdf",
        submitted_by=ANN,
        confidential=False,
        steps=(StepSpec(signers=["person:ann"]), StepSpec(signers=["role:burgemeester"])),
        pdf_sha256="0" * 64,
    )
    return Instance(**{**fields, **changes})  # type: ignore[arg-type]


def request(document: Instance, step: int = 1, person: PersonRef = ANN) -> Request:
    return Request(uuid4(), document.document_id, "default", step, f"person:{person.id}", person, "sign")


async def test_a_directory_replaced_reads_back_with_its_imported_absences_and_bumps_the_version(store: RouterStore) -> None:
    """People, roles, substitutes, groups and imported absences come back as written; the version moves; API absences stay."""
    before = await store.directory_version("default")
    api = await store.add_absence("default", Absence("ann", NOW, NOW + timedelta(days=1)), source="api", note="congres")
    await store.replace_directory("default", DIRECTORY)
    read = await store.load_directory("default")
    assert (read.people, read.roles, read.substitutes, read.groups) == (
        DIRECTORY.people,
        DIRECTORY.roles,
        DIRECTORY.substitutes,
        DIRECTORY.groups,
    )
    assert set(read.absences) == {"ann", "bart"}
    assert (await store.load_directory("default", absences_from=["import"])).absences == DIRECTORY.absences
    assert await store.directory_version("default") > before
    assert await store.has_person("default", "ann") and not await store.has_person("othercity", "ann")
    assert [a.id for a in await store.absences("default", "ann")] == [api]


async def test_flows_are_saved_replaced_and_listed_per_org(store: RouterStore) -> None:
    """Saving a flow twice keeps the last; another org does not see it."""
    flow = FlowDefinition("college", "Collegebesluit", "Secretariaat", "bestuur", False, (StepSpec(signers=["person:ann"]),))
    await store.save_flow("default", flow)
    await store.save_flow("default", FlowDefinition(**{**flow.__dict__, "title": "College"}))
    assert (await store.flow("default", "college")).title == "College"
    assert await store.flow("othercity", "college") is None
    assert [f.key for f in await store.flows("default")] == ["college"]


async def test_absences_are_found_until_applied_and_the_next_start_is_known(store: RouterStore) -> None:
    """An absence that began is unapplied until marked; one ahead is the next start; removing works once."""
    begun = await store.add_absence("default", Absence("ann", NOW - timedelta(hours=1), NOW + timedelta(days=1)), source="api")
    ahead = await store.add_absence("default", Absence("bart", NOW + timedelta(hours=2), NOW + timedelta(days=1)), source="api")
    assert [a.id for a in await store.unapplied_absences(NOW)] == [begun]
    assert await store.next_absence_start(NOW) == NOW + timedelta(hours=2)
    await store.mark_applied(begun, NOW)
    assert await store.unapplied_absences(NOW) == []
    assert await store.remove_absence("default", ahead) and not await store.remove_absence("default", ahead)


async def test_an_instance_reads_back_and_its_signatures_keep_the_newest_pdf(store: RouterStore) -> None:
    """Signatures recorded out of order: both kept, the PDF of the higher revision wins."""
    document = instance()
    await store.insert_instance(document)
    assert await store.instance(document.document_id) == document
    record = SignatureRecord(request_id=uuid4(), step=1, action="sign", signer=ANN, signed_at=NOW)
    await store.record_signature(document.document_id, record, "2" * 64, 2)
    read = await store.instance(document.document_id)
    await store.record_signature(document.document_id, record, "1" * 64, 1)
    # what the signature left, as read back, is what the handlers take it to be
    assert await store.instance(document.document_id) == with_signature(read, record, "1" * 64, 1)
    await store.update_instance(document.document_id, current_step=2, status="completed")
    read = await store.instance(document.document_id)
    assert (read.pdf_sha256, read.revision, len(read.signatures), read.current_step, read.status) == (
        "2" * 64,
        2,
        2,
        2,
        "completed",
    )


async def test_requests_are_found_by_step_by_person_and_by_status(store: RouterStore) -> None:
    """Requests come back in the order they were opened; pending ones per document and per person; statuses change."""
    document = instance(flow_key=None)
    await store.insert_instance(document)
    first, second = request(document), request(document, person=PersonRef(id="bart", name="Bart Baert"))
    await store.insert_request(first)
    await store.insert_request(second)
    assert [r.request_id for r in await store.step_requests(document.document_id, 1)] == [first.request_id, second.request_id]
    assert await store.request(first.request_id) == first
    await store.set_request_status([first.request_id], "signed")
    assert [r.request_id for r in await store.pending_requests(document.document_id)] == [second.request_id]
    assert [r.request_id for r in await store.pending_of("default", "bart")] == [second.request_id]
    assert await store.people_waiting("default") == {"bart"}
    assert [d for d, _ in await store.running_ad_hoc_steps("default")] == [document.document_id]


async def test_a_signature_recorded_with_its_request_signs_it_and_can_complete_the_document(store: RouterStore) -> None:
    """Recorded with ``signed`` and ``status``, the request is signed and the document moved, with the signature; the
    step's other request stays as it was."""
    document = instance(flow_key=None)
    await store.insert_instance(document)
    first, second = request(document), request(document, person=PersonRef(id="bart", name="Bart Baert"))
    await store.insert_request(first)
    await store.insert_request(second)
    record = SignatureRecord(request_id=first.request_id, step=1, action="sign", signer=ANN, signed_at=NOW)
    await store.record_signature(document.document_id, record, "1" * 64, 1, signed=first.request_id, status="completed")
    recorded = await store.instance(document.document_id)
    assert (recorded.status, recorded.signatures) == ("completed", (record,))
    assert recorded == with_signature(document, record, "1" * 64, 1, status="completed")
    assert [r.status for r in await store.step_requests(document.document_id, 1)] == ["signed", "pending"]


async def test_a_signature_recorded_with_the_next_step_signs_its_request_and_opens_that_step(store: RouterStore) -> None:
    """Recorded with ``opens``, the request is signed, the signature kept, and the document at the next step with its
    requests open in the order given, from one call."""
    document = instance(flow_key=None)
    await store.insert_instance(document)
    first = request(document)
    await store.insert_request(first)
    record = SignatureRecord(request_id=first.request_id, step=1, action="sign", signer=ANN, signed_at=NOW)
    bart = PersonRef(id="bart", name="Bart Baert")
    second, third = request(document, step=2, person=bart), replace(request(document, step=2), on_behalf_of=bart, reason="absent")
    await store.record_signature(document.document_id, record, "1" * 64, 1, signed=first.request_id, opens=(2, [second, third]))
    assert await store.instance(document.document_id) == replace(with_signature(document, record, "1" * 64, 1), current_step=2)
    assert [r.status for r in await store.step_requests(document.document_id, 1)] == ["signed"]
    assert await store.step_requests(document.document_id, 2) == [second, third]


async def test_a_request_comes_with_its_whole_step_and_only_for_its_own_document(store: RouterStore) -> None:
    """The request and its step's requests in the order they were opened; nothing for another document or an unknown id."""
    document, other = instance(flow_key=None), instance(flow_key=None)
    await store.insert_instance(document)
    await store.insert_instance(other)
    first, second = request(document), request(document, person=PersonRef(id="bart", name="Bart Baert"))
    for made in (first, second, request(document, step=2), request(other)):
        await store.insert_request(made)
    assert await store.step_of(second.request_id, document.document_id) == (second, [first, second])
    assert await store.step_of(second.request_id, other.document_id) == (None, [])
    assert await store.step_of(uuid4(), document.document_id) == (None, [])


async def test_the_directory_version_read_with_a_document_or_a_flow_is_the_version_and_moves_with_a_replace(
    store: RouterStore,
) -> None:
    """Asked after a document's or a flow's read (which bring it along), the version is the one asked alone; a
    directory replaced in the same transaction moves it."""
    document = instance(flow_key=None)
    await store.insert_instance(document)
    await store.replace_directory("default", DIRECTORY)
    version = await store.directory_version("default")
    await store.instance(document.document_id)
    assert await store.directory_version("default") == version
    await store.replace_directory("default", replace(DIRECTORY, substitutes={}))
    assert await store.directory_version("default") == version + 1
    assert await store.flow("default", "no-such-flow") is None
    assert await store.directory_version("default") == version + 1


async def test_opening_a_step_moves_the_document_and_opens_its_requests_in_order(store: RouterStore) -> None:
    """A step's requests opened together (one on behalf of someone) read back as given, in the order given, the
    document at that step."""
    document = instance(flow_key=None)
    await store.insert_instance(document)
    bart = PersonRef(id="bart", name="Bart Baert")
    first, second = request(document, step=2, person=bart), replace(request(document, step=2), on_behalf_of=bart, reason="absent")
    await store.open_step(document.document_id, 2, [first, second])
    assert await store.step_requests(document.document_id, 2) == [first, second]
    assert (await store.instance(document.document_id)).current_step == 2


async def test_a_new_document_is_stored_with_its_first_step_open(store: RouterStore) -> None:
    """Opening step 1 of a new document stores the document, at step 1, and opens the step's requests."""
    document = instance(flow_key=None)
    first = request(document)
    await store.open_step(document.document_id, 1, [first], new=document)
    assert await store.instance(document.document_id) == replace(document, current_step=1)
    assert await store.step_requests(document.document_id, 1) == [first]


async def test_publishing_keeps_the_message(store: RouterStore) -> None:
    """What a handler publishes is kept with its change (an outbox row, or the fake's list)."""
    event = DocumentWithdrawn(correlation_id=uuid4(), withdrawn_by="elen", reason="r")
    await store.publish(event)
    if isinstance(store, FakeRouterStore):
        assert store.published == [event]
    else:
        assert await store._conn.fetchval("SELECT count(*) FROM router.outbox WHERE message_id = $1", event.event_id) == 1
