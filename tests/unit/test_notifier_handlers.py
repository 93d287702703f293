"""The notifier's handlers on an in-memory store: which mail each command or event queues, and which it does not."""

from datetime import UTC, datetime, timedelta
from uuid import uuid4
from zoneinfo import ZoneInfo

from services.notifier import handlers
from services.notifier.domain import ReminderPolicy, operator_mail_id
from services.notifier.render import LINK, MailRenderer
from shared.contract import SendDownloadLink, SendSigningLink, SendSignInLink
from shared.events import (
    DocumentCompleted,
    DocumentDeclined,
    DocumentWithdrawn,
    PersonRef,
    RoutingFailed,
    SignatureCancelled,
    SignatureReassigned,
    SignatureRecord,
    Signed,
)
from tests.support.fakes.notifier import FakeNotifierStore

BRUSSELS = ZoneInfo("Europe/Brussels")
MONDAY = datetime(2026, 3, 2, 10, 0, tzinfo=BRUSSELS)
ANN = PersonRef(id="ann", name="Ann Aerts", email="ann@x.be")
BART = PersonRef(id="bart", name="Bart Baert", email="bart@x.be", title="burgemeester")
SOFIE = PersonRef(id="sofie", name="Sofie Smet", email="sofie@x.be")
ELEN = PersonRef(id="elen", name="Elen Elaut", email="elen@x.be", language="en")
MARC = PersonRef(id="marc", name="Marc Maes", email="marc@x.be", language="fr", title="schepen")
RENDERER = MailRenderer("Europe/Brussels")
POLICY = ReminderPolicy(after=3, every=2, maximum=3, due_after=5, timezone="Europe/Brussels")


def link_command(recipient: PersonRef = ANN, **changes: object) -> SendSigningLink:
    fields = dict(
        correlation_id=uuid4(), request_id=uuid4(), recipient=recipient, title="Collegebesluit 42", submitted_by=ELEN,
        step=1, step_count=2, action="sign", expires_at=MONDAY + timedelta(days=21),
    )
    return SendSigningLink.model_validate({**fields, **changes})


async def send_link(store: FakeNotifierStore, command: SendSigningLink, at: datetime = MONDAY) -> None:
    await handlers.on_send_signing_link(command, store, renderer=RENDERER, policy=POLICY, clock=lambda: at)


def signed(command: SendSigningLink) -> Signed:
    return Signed(
        correlation_id=command.correlation_id, request_id=command.request_id, step=1, action="sign",
        signer=command.recipient, signed_at=MONDAY, pdf_sha256="0" * 64, revision=1,
    )


def moved_from(person: PersonRef) -> SignatureReassigned:
    return SignatureReassigned(
        correlation_id=uuid4(), request_id=uuid4(), new_request_id=uuid4(), from_person=person, to_person=SOFIE,
        reason="absent", title="Besluit A",
    )


async def test_a_signing_request_queues_one_mail_without_its_link_and_starts_the_reminders() -> None:
    """The request mail is keyed by its command, holds the link placeholder, and its schedule asks a first reminder on Thursday."""
    store, command = FakeNotifierStore(), link_command()
    await send_link(store, command)
    await send_link(store, command)
    [mail] = store.mails.values()
    assert (mail.mail_id, mail.kind, mail.recipient, mail.link_kind, mail.request_id) == (
        command.command_id, "signature_request", ANN.email, "signing", command.request_id
    )
    assert mail.content.subject == "Ter ondertekening: Collegebesluit 42"
    assert LINK in mail.content.text and "Graag uiterlijk op 09-03-2026" in mail.content.text
    schedule = store.schedules[command.request_id]
    assert (schedule.status, schedule.next_at) == ("open", datetime(2026, 3, 5, 10, 0, tzinfo=BRUSSELS))


async def test_a_request_due_within_the_hour_shows_its_time_in_the_city_s_zone() -> None:
    """A request due at 10:00 UTC (11:00 in Brussels), named by its submission, asks for it by that time, and keeps it."""
    store, command = FakeNotifierStore(), link_command(due_at=datetime(2026, 3, 2, 10, 0, tzinfo=UTC))
    await send_link(store, command)
    [mail] = store.mails.values()
    assert "Graag uiterlijk op 02-03-2026 om 11:00." in mail.content.text
    assert store.schedules[command.request_id].due_at == datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


async def test_a_reminder_shows_the_request_s_own_due_date_and_says_when_it_passed() -> None:
    """A reminder after the due date says it is overdue, with the date the request asked for; it opens no new schedule."""
    store, request = FakeNotifierStore(), link_command()
    await send_link(store, request)
    reminder = link_command(kind="reminder", reminder=2, request_id=request.request_id, correlation_id=request.correlation_id)
    await send_link(store, reminder, at=MONDAY + timedelta(days=10))
    mail = store.mails[reminder.command_id]
    assert mail.kind == "signature_reminder"
    assert "Dit had uiterlijk op 09-03-2026 moeten gebeuren." in mail.content.text and "herinnering 2" in mail.content.text
    assert len(store.schedules) == 1


async def test_a_reassigned_request_names_whom_the_signer_stands_in_for() -> None:
    """A request moved to a substitute is mailed as such, and has a reminder schedule of its own."""
    store, command = FakeNotifierStore(), link_command(SOFIE, kind="reassigned", on_behalf_of=BART)
    await send_link(store, command)
    mail = store.mails[command.command_id]
    assert mail.kind == "signature_reassigned" and "Bart Baert is afwezig" in mail.content.text
    assert store.schedules[command.request_id].status == "open"


async def test_no_signing_mail_to_a_signer_without_an_address() -> None:
    """Without an address nothing is queued and no reminders are planned."""
    store = FakeNotifierStore()
    await send_link(store, link_command(PersonRef(id="x", name="Xavier")))
    assert store.mails == {} and store.schedules == {}


async def test_no_signing_mail_once_the_document_ended() -> None:
    """A link command for a withdrawn document queues nothing and plans no reminders."""
    store, command = FakeNotifierStore(), link_command()
    await handlers.on_document_ended(
        DocumentWithdrawn(correlation_id=command.correlation_id, withdrawn_by="elen", reason="wrong file"), store, clock=lambda: MONDAY
    )
    await send_link(store, command)
    assert store.mails == {} and store.schedules == {}


async def test_no_signing_mail_for_a_request_closed_before_its_command_arrived() -> None:
    """A request signed before its link command came gets no mail, and stays closed."""
    store, command = FakeNotifierStore(), link_command()
    await handlers.on_request_closed(signed(command), store, clock=lambda: MONDAY)
    await send_link(store, command)
    assert store.mails == {}
    assert store.schedules[command.request_id].closed_by == "signature.signed"


async def test_a_closed_request_gets_no_more_reminders_and_its_unsent_link_mail_is_cancelled() -> None:
    """A cancelled request's schedule closes and its pending link mail will not go out."""
    store, command = FakeNotifierStore(), link_command()
    await send_link(store, command)
    cancelled = SignatureCancelled(correlation_id=command.correlation_id, request_id=command.request_id, reason="step done")
    await handlers.on_request_closed(cancelled, store, clock=lambda: MONDAY)
    assert store.schedules[command.request_id].status == "closed"
    assert store.mails[command.command_id].status == "cancelled"


async def test_a_request_moved_away_from_an_absent_person_waits_to_be_told() -> None:
    """A reassignment closes the request and keeps the move for the absent person's notice; one without an address keeps none."""
    store = FakeNotifierStore()
    move, silent = moved_from(BART), moved_from(PersonRef(id="x", name="Xavier"))
    for event in (move, silent):
        await handlers.on_request_closed(event, store, clock=lambda: MONDAY)
    assert [m.event_id for m in await store.waiting_moves("default", "bart")] == [move.event_id]
    assert store.moves.keys() == {move.event_id}
    assert store.schedules[move.request_id].closed_by == "signature.reassigned"


async def test_a_completed_document_closes_every_request_of_it() -> None:
    """document.completed ends the document: its requests get no reminders and their unsent link mails are cancelled."""
    store, command = FakeNotifierStore(), link_command()
    await send_link(store, command)
    completed = DocumentCompleted(correlation_id=command.correlation_id, pdf_sha256="0" * 64, signatures=[])
    await handlers.on_document_ended(completed, store, clock=lambda: MONDAY)
    assert store.ended == {command.correlation_id: "completed"}
    assert store.schedules[command.request_id].closed_by == "document.completed"
    assert store.mails[command.command_id].status == "cancelled"


async def test_the_submitter_gets_a_download_link_mail() -> None:
    """SendDownloadLink queues a document_completed mail that the sender completes with the submitter's download link."""
    store = FakeNotifierStore()
    signature = SignatureRecord(request_id=uuid4(), step=1, action="sign", signer=ANN, signed_at=MONDAY)
    command = SendDownloadLink(
        correlation_id=uuid4(), recipient=ELEN, title="Besluit 7", signatures=[signature], expires_at=MONDAY + timedelta(days=30)
    )
    await handlers.on_send_download_link(command, store, renderer=RENDERER, clock=lambda: MONDAY)
    mail = store.mails[command.command_id]
    assert (mail.kind, mail.recipient, mail.link_kind, mail.link_person) == ("document_completed", ELEN.email, "download", "elen")
    assert "Ann Aerts" in mail.content.text and LINK in mail.content.text


async def test_no_download_link_mail_to_a_submitter_without_an_address() -> None:
    """A submitter without an address gets no mail."""
    store = FakeNotifierStore()
    command = SendDownloadLink(correlation_id=uuid4(), recipient=PersonRef(id="x", name="X"), title="B", expires_at=MONDAY)
    await handlers.on_send_download_link(command, store, renderer=RENDERER, clock=lambda: MONDAY)
    assert store.mails == {}


async def test_a_sign_in_link_mail_is_queued_once_per_command() -> None:
    """SendSignInLink queues one sign_in mail, however often it arrives, that the sender completes with the attempt's link."""
    store = FakeNotifierStore()
    command = SendSignInLink(correlation_id=uuid4(), recipient=MARC, expires_at=MONDAY + timedelta(minutes=15))
    for _ in range(2):
        await handlers.on_send_sign_in_link(command, store, renderer=RENDERER, clock=lambda: MONDAY)
    [mail] = store.mails.values()
    assert (mail.mail_id, mail.kind, mail.recipient, mail.link_kind, mail.request_id) == (
        command.command_id, "sign_in", MARC.email, "sign_in", command.correlation_id
    )
    assert mail.content.subject == "Connexion à Paraaf" and LINK in mail.content.text


async def test_no_sign_in_link_mail_to_a_person_without_an_address() -> None:
    """A person without an address gets no sign-in mail."""
    store = FakeNotifierStore()
    command = SendSignInLink(correlation_id=uuid4(), recipient=PersonRef(id="x", name="X"), expires_at=MONDAY)
    await handlers.on_send_sign_in_link(command, store, renderer=RENDERER, clock=lambda: MONDAY)
    assert store.mails == {}


async def test_the_submitter_of_a_declined_document_is_told_who_declined_and_why() -> None:
    """document.declined ends the document and mails the submitter, in their language, the decliner and the reason."""
    store = FakeNotifierStore()
    declined = DocumentDeclined(correlation_id=uuid4(), declined_by=MARC, reason="Le montant est erroné", title="Besluit 7", submitted_by=ELEN)
    await handlers.on_document_declined(declined, store, renderer=RENDERER, clock=lambda: MONDAY)
    mail = store.mails[declined.event_id]
    assert (mail.kind, mail.recipient, mail.content.subject) == ("document_declined", ELEN.email, "Declined: Besluit 7")
    assert "Marc Maes (schepen) declined" in mail.content.text and "Le montant est erroné" in mail.content.text
    assert store.ended == {declined.correlation_id: "declined"}


async def test_a_declined_document_without_a_submitter_address_still_ends() -> None:
    """With nobody to tell, no mail is queued, but the document's reminders stop all the same."""
    store = FakeNotifierStore()
    declined = DocumentDeclined(correlation_id=uuid4(), declined_by=MARC, reason="nee", title="Besluit 7")
    await handlers.on_document_declined(declined, store, renderer=RENDERER, clock=lambda: MONDAY)
    assert store.mails == {} and store.ended == {declined.correlation_id: "declined"}


async def routing_alert(store: FakeNotifierStore, alert: RoutingFailed, operators: tuple[str, ...]) -> None:
    await handlers.on_routing_failed(alert, store, renderer=RENDERER, operators=operators, language="en", clock=lambda: MONDAY)


async def test_a_routing_alert_is_mailed_once_to_every_operator() -> None:
    """Each operator address gets one mail in the operators' language, however often the alert comes."""
    store = FakeNotifierStore()
    alert = RoutingFailed(correlation_id=uuid4(), request_id=uuid4(), signer=BART, reason="no substitute available")
    await routing_alert(store, alert, ("ops@x.be", "duty@x.be"))
    await routing_alert(store, alert, ("ops@x.be", "duty@x.be"))
    assert {m.mail_id: m.recipient for m in store.mails.values()} == {
        operator_mail_id(alert.event_id, "ops@x.be"): "ops@x.be", operator_mail_id(alert.event_id, "duty@x.be"): "duty@x.be"
    }
    assert {m.content.subject for m in store.mails.values()} == {"Paraaf: no substitute available for Bart Baert"}


async def test_no_routing_alert_without_operator_addresses() -> None:
    """With PARAAF_OPERATOR_EMAILS empty, nothing is queued."""
    store = FakeNotifierStore()
    await routing_alert(store, RoutingFailed(correlation_id=uuid4(), request_id=uuid4(), signer=BART, reason="r"), ())
    assert store.mails == {}
