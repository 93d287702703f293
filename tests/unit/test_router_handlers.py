"""The router's handlers on an in-memory store: what each event does to a document and what is announced."""

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from services.router import handlers
from services.router.directory import DirectoryCache
from services.router.domain import Absence, Directory, FlowDefinition, Group, Person, Role
from services.router.scheduler import apply_started_absences
from shared.contract import ReassignRequest, WithdrawDocument
from shared.errors import CodedError
from shared.events import (
    DocumentAccepted,
    DocumentCompleted,
    DocumentDeclined,
    DocumentRejected,
    DocumentSubmitted,
    DocumentWithdrawn,
    PersonRef,
    RoutingFailed,
    SignatureCancelled,
    SignatureDeclined,
    SignatureReassigned,
    SignatureRequested,
    Signed,
    StepSpec,
)
from shared.messaging import Delivery
from tests.support.fakes.router import FakeRouterStore

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
PEOPLE = {
    p.id: p
    for p in (
        Person("elen", "Elen Elaut", "elen@x.be"),
        Person("ann", "Ann Aerts", "ann@x.be"),
        Person("david", "David De Wit", "david@x.be"),
        Person("bart", "Bart Baert", "bart@x.be"),
        Person("sofie", "Sofie Smet", "sofie@x.be"),
        Person("marc", "Marc Maes", "marc@x.be"),
    )
}
ROLES = {
    "directeur": Role("directeur", "algemeen directeur", ("ann",)),
    "burgemeester": Role("burgemeester", "burgemeester", ("bart",)),
}
SUBSTITUTES = {"ann": ("david",), "bart": ("sofie", "marc")}
COLLEGE = FlowDefinition(
    "college", "Collegebesluit", "Secretariaat", "bestuur", False,
    (StepSpec(signers=["role:directeur"]), StepSpec(signers=["role:burgemeester"])),
)


def away(*people: str, start: datetime = NOW - timedelta(days=1)) -> dict[str, tuple[Absence, ...]]:
    return {p: (Absence(p, start, start + timedelta(days=30)),) for p in people}


def store(*absent: str) -> FakeRouterStore:
    fake = FakeRouterStore(Directory(people=PEOPLE, roles=ROLES, substitutes=SUBSTITUTES, absences=away(*absent)))
    fake.flow_definitions[("default", "college")] = COLLEGE
    return fake


def submitted(**changes: object) -> DocumentSubmitted:
    fields = dict(
        correlation_id=uuid4(), source="notula", external_ref="R-1", title="Collegebesluit 7", flow="college",
        submitted_by="elen", filename="b.pdf", pdf_sha256="a" * 64, pdf_size=10, page_count=1,
    )
    return DocumentSubmitted.model_validate({**fields, **changes})


async def submit(fake: FakeRouterStore, **changes: object) -> DocumentSubmitted:
    event = submitted(**changes)
    await handlers.on_document_submitted(event, fake, directories=DirectoryCache(), clock=lambda: NOW)
    return event


def signed(request: SignatureRequested, revision: int = 1) -> Signed:
    return Signed(
        correlation_id=request.correlation_id, request_id=request.request_id, step=request.step, action="sign",
        signer=request.signer, on_behalf_of=request.on_behalf_of, signed_at=NOW, pdf_sha256=f"{revision}" * 64, revision=revision,
    )


async def sign(fake: FakeRouterStore, request: SignatureRequested, revision: int = 1) -> None:
    await handlers.on_signed(signed(request, revision), fake, directories=DirectoryCache(), clock=lambda: NOW)


def asked(fake: FakeRouterStore) -> list[tuple[str, str | None, int]]:
    return [(r.signer.id, r.on_behalf_of.id if r.on_behalf_of else None, r.step) for r in fake.sent(SignatureRequested)]


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"flow": "nope"}, "unknown_flow"),
        ({"submitted_by": "nobody"}, "unknown_submitter"),
        ({"flow": None, "steps": [{"signers": ["person:ghost"]}]}, "unknown_signer"),
    ],
)
async def test_a_submission_the_directory_cannot_follow_is_refused_with_its_code(changes: dict, code: str) -> None:
    """An unknown flow, submitter or signer: document.rejected with the code, no document, nobody asked."""
    fake = store()
    await submit(fake, **changes)
    [rejected] = fake.sent(DocumentRejected)
    assert rejected.code == code and fake.instances == {} and fake.sent(SignatureRequested) == []


async def test_an_accepted_document_asks_its_first_step_only() -> None:
    """The director (step 1 of 2) is asked, knowing two signatures will be made; the mayor waits."""
    fake = store()
    event = await submit(fake)
    [accepted] = fake.sent(DocumentAccepted)
    assert (accepted.step_count, accepted.department) == (2, "Secretariaat")
    assert asked(fake) == [("ann", None, 1)]
    assert fake.sent(SignatureRequested)[0].signature_count == 2
    assert fake.instances[event.document_id].current_step == 1


async def test_every_request_of_a_document_carries_the_due_date_it_was_submitted_with() -> None:
    """Due in an hour: the director's request and, after she signs, the mayor's name that instant; without one, none."""
    due = NOW + timedelta(hours=1)
    fake = store()
    event = await submit(fake, due_at=due)
    await sign(fake, fake.sent(SignatureRequested)[0])
    assert [r.due_at for r in fake.sent(SignatureRequested)] == [due, due]
    assert fake.instances[event.document_id].due_at == due
    plain = store()
    await submit(plain)
    assert [r.due_at for r in plain.sent(SignatureRequested)] == [None]


async def test_an_absent_signer_is_stood_in_for_and_nobody_available_alerts_an_operator() -> None:
    """With the director away her deputy signs for her; with the mayor's whole row away the mayor keeps it and routing.unresolved goes out."""
    fake = store("ann", "bart", "sofie", "marc")
    first = await submit(fake)
    assert asked(fake) == [("david", "ann", 1)]
    await sign(fake, fake.sent(SignatureRequested)[0])
    assert asked(fake)[-1] == ("bart", None, 2)
    [alert] = fake.sent(RoutingFailed)
    assert alert.correlation_id == first.document_id and "no substitute" in alert.reason


async def test_a_signature_that_completes_a_step_opens_the_next() -> None:
    """The director signs: her request is signed and the mayor is asked for step 2."""
    fake = store()
    await submit(fake)
    [first] = fake.sent(SignatureRequested)
    await sign(fake, first)
    assert fake.requests[first.request_id].status == "signed"
    assert asked(fake) == [("ann", None, 1), ("bart", None, 2)]
    assert fake.sent(DocumentCompleted) == []


async def test_the_last_signature_completes_the_document_with_the_newest_pdf() -> None:
    """After the mayor's signature: document.completed with both signatures and the PDF of revision 2."""
    fake = store()
    event = await submit(fake)
    await sign(fake, fake.sent(SignatureRequested)[0], revision=1)
    await sign(fake, fake.sent(SignatureRequested)[1], revision=2)
    [completed] = fake.sent(DocumentCompleted)
    assert completed.pdf_sha256 == "2" * 64 and [s.signer.id for s in completed.signatures] == ["ann", "bart"]
    assert fake.instances[event.document_id].status == "completed"


async def test_a_late_signature_is_recorded_and_changes_nothing_else() -> None:
    """A signature through a request already cancelled: recorded on the document, nothing opened or announced."""
    fake = store()
    event = await submit(fake)
    [first] = fake.sent(SignatureRequested)
    await fake.set_request_status([first.request_id], "cancelled")
    published = len(fake.published)
    await sign(fake, first)
    assert len(fake.instances[event.document_id].signatures) == 1
    assert len(fake.published) == published


async def test_a_signature_for_an_unknown_request_is_ignored() -> None:
    """A signature naming a request the router never opened changes nothing."""
    fake = store()
    await submit(fake)
    stray = fake.sent(SignatureRequested)[0].model_copy(update={"request_id": uuid4()})
    published = len(fake.published)
    await sign(fake, stray)
    assert len(fake.published) == published


async def test_a_signature_through_the_old_link_just_before_a_move_counts() -> None:
    """The director signs in the instant her request moved to her deputy: it counts, the deputy's request is cancelled, step 2 opens."""
    fake = store()
    await submit(fake)
    [first] = fake.sent(SignatureRequested)
    directory = Directory(people=PEOPLE, roles=ROLES, substitutes=SUBSTITUTES, absences=away("ann"))
    assert await handlers.move_work_of(fake, "default", "ann", directory, NOW, absence_id=uuid4()) == 1
    deputy = fake.sent(SignatureRequested)[1]
    await sign(fake, first)
    [cancelled] = fake.sent(SignatureCancelled)
    assert cancelled.request_id == deputy.request_id and "before the request moved" in cancelled.reason
    assert asked(fake)[-1] == ("bart", None, 2)


async def test_in_an_any_step_the_first_signature_completes_it_and_cancels_the_rest() -> None:
    """Two schepenen asked in an `any` step: the first to sign completes the document and the other's request is cancelled."""
    fake = store()
    await submit(fake, flow=None, steps=[{"mode": "any", "signers": ["person:sofie", "person:marc"]}])
    sofie, marc = fake.sent(SignatureRequested)
    await sign(fake, sofie)
    assert [c.request_id for c in fake.sent(SignatureCancelled)] == [marc.request_id]
    assert len(fake.sent(DocumentCompleted)) == 1


async def test_in_an_all_step_the_step_waits_for_every_signer() -> None:
    """Two signers in an `all` step: after the first signature nothing completes; after the second the document does."""
    fake = store()
    await submit(fake, flow=None, steps=[{"mode": "all", "signers": ["person:sofie", "person:marc"]}])
    sofie, marc = fake.sent(SignatureRequested)
    await sign(fake, sofie, revision=1)
    assert fake.sent(DocumentCompleted) == []
    await sign(fake, marc, revision=2)
    assert len(fake.sent(DocumentCompleted)) == 1


async def test_a_decline_stops_the_document_and_cancels_what_waits() -> None:
    """The director declines: document.declined with her reason; no other request stays open."""
    fake = store()
    event = await submit(fake, flow=None, steps=[{"mode": "all", "signers": ["person:ann", "person:marc"]}])
    ann, marc = fake.sent(SignatureRequested)
    await handlers.on_signature_declined(
        SignatureDeclined(correlation_id=event.document_id, request_id=ann.request_id, step=1, signer=ann.signer, reason="te vroeg"), fake
    )
    [declined] = fake.sent(DocumentDeclined)
    assert declined.reason == "te vroeg" and declined.submitted_by.id == "elen"
    assert [c.request_id for c in fake.sent(SignatureCancelled)] == [marc.request_id]
    assert fake.instances[event.document_id].status == "declined"


@pytest.mark.parametrize(
    ("by", "org", "code"),
    [("bart", "default", "not_allowed"), ("operator:ops", "othercity", "unknown_document")],
)
async def test_only_the_submitter_or_an_operator_of_the_org_may_withdraw(by: str, org: str, code: str) -> None:
    """Another person, or an operator of another org: refused with its code, the document still runs."""
    fake = store()
    event = await submit(fake)
    with pytest.raises(CodedError) as refused:
        await handlers.withdraw(fake, event.document_id, org=org, by=by, reason="x")
    assert refused.value.code == code and fake.instances[event.document_id].status == "active"


async def test_a_withdrawal_cancels_what_waits_and_tells_the_source() -> None:
    """The submitter withdraws: document.withdrawn naming her, open requests cancelled; a second withdrawal is refused."""
    fake = store()
    event = await submit(fake)
    await handlers.withdraw(fake, event.document_id, org="default", by="elen", reason="wrong file")
    [withdrawn] = fake.sent(DocumentWithdrawn)
    assert (withdrawn.withdrawn_by, withdrawn.reason) == ("elen", "wrong file")
    assert await fake.pending_requests(event.document_id) == []
    with pytest.raises(CodedError, match="already withdrawn"):
        await handlers.withdraw(fake, event.document_id, org="default", by="elen", reason="again")


@pytest.mark.parametrize(("publisher", "withdrawn"), [("paraaf.intake", True), ("paraaf.signer", False)])
async def test_a_sources_withdrawal_is_taken_only_from_intake(publisher: str, withdrawn: bool) -> None:
    """`source:<name>` (intake checked the document is that source's) stops the document; the same from any
    other service (the portal) is ignored, the document still runs."""
    fake = store()
    event = await submit(fake)
    command = WithdrawDocument(correlation_id=event.document_id, withdrawn_by="source:notula", reason="moved")
    delivery = Delivery("router.withdraw", b"{}", publisher, str(command.command_id))
    await handlers.on_withdraw_document(command, fake, delivery, directories=DirectoryCache(), intake_user="paraaf.intake")
    assert [w.withdrawn_by for w in fake.sent(DocumentWithdrawn)] == (["source:notula"] if withdrawn else [])
    assert fake.instances[event.document_id].status == ("withdrawn" if withdrawn else "active")


async def test_an_absence_moves_open_requests_and_keeps_what_nobody_can_take() -> None:
    """Ann goes on leave: her request moves to David (reassigned, new request on her behalf); with David away too, it stays and an operator is told."""
    fake = store()
    await submit(fake)
    directory = Directory(people=PEOPLE, roles=ROLES, substitutes=SUBSTITUTES, absences=away("ann"))
    assert await handlers.move_work_of(fake, "default", "ann", directory, NOW, absence_id=uuid4()) == 1
    [moved] = fake.sent(SignatureReassigned)
    assert (moved.from_person.id, moved.to_person.id) == ("ann", "david")
    assert asked(fake)[-1] == ("david", "ann", 1)

    stuck = store()
    await submit(stuck)
    everyone_away = Directory(people=PEOPLE, roles=ROLES, substitutes=SUBSTITUTES, absences=away("ann", "david"))
    assert await handlers.move_work_of(stuck, "default", "ann", everyone_away, NOW, absence_id=uuid4()) == 0
    assert stuck.sent(SignatureReassigned) == [] and len(stuck.sent(RoutingFailed)) == 1


async def test_the_scheduler_applies_an_absence_that_runs_and_skips_one_that_is_over() -> None:
    """A running absence moves its person's work and is marked applied; one already over is marked applied without moving anything."""
    fake = store()
    await submit(fake)
    running = await fake.add_absence("default", Absence("ann", NOW - timedelta(hours=1), NOW + timedelta(days=2)), source="api")
    over = await fake.add_absence("default", Absence("bart", NOW - timedelta(days=9), NOW - timedelta(days=2)), source="api")
    ahead = await fake.add_absence("default", Absence("marc", NOW + timedelta(days=1), NOW + timedelta(days=2)), source="api")
    assert await apply_started_absences(fake, DirectoryCache(), NOW) == 1
    assert fake.stored_absences[running].applied_at == NOW and fake.stored_absences[over].applied_at == NOW
    assert fake.stored_absences[ahead].applied_at is None
    assert [m.to_person.id for m in fake.sent(SignatureReassigned)] == ["david"]


def test_person_ref_carries_the_function_a_person_signs_in() -> None:
    """The mayor asked as mayor carries the title burgemeester (it goes on the stamp)."""
    from services.router.store import person_ref

    assert person_ref(PEOPLE["bart"], "burgemeester") == PersonRef(id="bart", name="Bart Baert", email="bart@x.be", title="burgemeester")


async def test_a_shielded_groups_document_is_never_given_to_a_substitute_outside_the_group() -> None:
    """A social-welfare decision while the mayor is away: his first substitute (outside the shielded group) is passed
    over for the next one inside it, and the request's reason says who was skipped."""
    people = {**PEOPLE, "sofie": Person("sofie", "Sofie Smet", "sofie@x.be", department="Bestuur"),
              "marc": Person("marc", "Marc Maes", "marc@x.be", department="OCMW")}
    groups = {"sociaal": Group("sociaal", ("OCMW",), shielded=True)}
    fake = FakeRouterStore(Directory(people=people, roles=ROLES, substitutes=SUBSTITUTES, absences=away("bart"), groups=groups))
    fake.flow_definitions[("default", "welzijn")] = FlowDefinition(
        "welzijn", "Welzijnsbesluit", "OCMW", "sociaal", False, (StepSpec(signers=["role:burgemeester"]),)
    )
    await submit(fake, flow="welzijn")
    [request] = fake.sent(SignatureRequested)
    assert (request.signer.id, request.on_behalf_of.id) == ("marc", "bart")
    assert request.reason == "absent; not asked, outside shielded group sociaal: sofie"


async def test_a_reassignment_from_the_incidents_page_is_done_only_for_an_operator_in_the_directory() -> None:
    """router.reassign from the portal: from someone without the operator role nothing moves; from an operator the
    request moves to the person named, and the trail's reason names her."""
    roles = {**ROLES, "operator": Role("operator", "operator", ("elen",))}
    fake = FakeRouterStore(Directory(people=PEOPLE, roles=roles, substitutes=SUBSTITUTES, absences={}))
    fake.flow_definitions[("default", "college")] = COLLEGE
    event = await submit(fake)
    [request] = fake.sent(SignatureRequested)
    command = ReassignRequest(correlation_id=event.document_id, request_id=request.request_id, to_person="david",
                              reassigned_by="operator:bart", reason="Ann is ziek")
    await handlers.on_reassign_request(command, fake, directories=DirectoryCache())
    assert fake.sent(SignatureReassigned) == []
    await handlers.on_reassign_request(command.model_copy(update={"reassigned_by": "operator:elen"}), fake, directories=DirectoryCache())
    [moved] = fake.sent(SignatureReassigned)
    assert (moved.to_person.id, moved.reason) == ("david", "reassigned by operator:elen: Ann is ziek")
