"""The signer's handlers and signing use cases on an in-memory store: what each event does to
requests, documents and links, what is announced, and what is refused."""

import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import pytest

from services.signer import handlers, signing
from services.signer.domain import LinkGone, LinkRefused, Links, ReasonRequired
from services.signer.pades import Placeholder, SigningJob, SigningResult
from services.signer.verification import secret_hash
from shared.contract import ReissueSigningLink, ResendSigningMail, SendDownloadLink, SendSigningLink
from shared.events import (
    DocumentCompleted,
    DocumentDeclined,
    DocumentWithdrawn,
    NotificationFailed,
    PersonRef,
    SignatureCancelled,
    SignatureDeclined,
    SignatureReassigned,
    SignatureRequested,
    Signed,
    SigningMailResent,
)
from shared.messaging import PermanentError
from tests.support.fakes.signer import FakeSignerStore

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
LINKS = Links("https://sign.test", timedelta(days=21), lambda: NOW, download_ttl=timedelta(days=7))
ANN = PersonRef(id="ann", name="Ann Aerts", email="ann@x.be", language="fr")
BART = PersonRef(id="bart", name="Bart Baert", email="bart@x.be", title="burgemeester")
ELEN = PersonRef(id="elen", name="Elen Elaut", email="elen@x.be")
PDF = b"%PDF-1.7 accepted"
BOX = Placeholder(1, 0, (10.0, 10.0, 110.0, 60.0))


class FakePdfSigner:
    """Signs by appending a mark, as the signing pool would put a signature in."""

    def __init__(self) -> None:
        self.jobs: list[SigningJob] = []

    async def sign(self, job: SigningJob) -> SigningResult:
        self.jobs.append(job)
        return SigningResult(job.pdf + b" signed", f"Signature{job.number}", job.number == 1, (BOX,))


async def accepted(fake: FakeSignerStore, pdf: bytes = PDF) -> tuple[UUID, str]:
    """A document intake accepted: its PDF stored as revision 0."""
    document_id, digest = uuid4(), await fake.put_blob(pdf)
    await fake.register_version(document_id, 0, "default", digest)
    return document_id, digest


def requested(document: tuple[UUID, str], signer: PersonRef = ANN, **changes: object) -> SignatureRequested:
    fields = dict(
        correlation_id=document[0], request_id=uuid4(), step=1, step_count=2, signer=signer, title="Besluit 7",
        filename="besluit-7.pdf", submitted_by=ELEN, pdf_sha256=document[1],
    )
    return SignatureRequested.model_validate({**fields, **changes})


async def found(pdf: bytes) -> tuple[Placeholder, ...]:
    return (BOX,)


async def opened(fake: FakeSignerStore, signer: PersonRef = ANN, **changes: object) -> SignatureRequested:
    """A request handled for a person in the directory, on a fresh accepted document."""
    fake.in_directory("default", signer, *([signer.title] if signer.title else []))
    event = requested(await accepted(fake), signer, **changes)
    await handlers.on_signature_requested(event, fake, links=LINKS, find_placeholders=found)
    return event


async def token_for(fake: FakeSignerStore, request_id: UUID) -> str:
    made = await handlers.mint_signing_link(fake, request_id, uuid4(), links=LINKS)
    return made.url.rsplit("/", 1)[1]


async def test_a_request_is_stored_prepared_and_mailed() -> None:
    """A request for a directory person opens, the certificate and placeholders are ready, and the mail is asked for."""
    fake = FakeSignerStore()
    event = await opened(fake)
    (mail,) = fake.sent(SendSigningLink)
    assert fake.requests[event.request_id].open and fake.issued == [("default", "ann")]
    assert fake.documents[event.document_id].placeholders == (BOX,)
    assert (mail.kind, mail.recipient, mail.expires_at, mail.causation_id) == ("request", ANN, NOW + LINKS.ttl, event.event_id)


async def test_a_request_s_due_date_is_passed_on_to_its_mail() -> None:
    """A request due in an hour asks the notifier for a mail naming that instant; one without names none."""
    fake = FakeSignerStore()
    await opened(fake, due_at=NOW + timedelta(hours=1))
    await opened(fake)
    assert [m.due_at for m in fake.sent(SendSigningLink)] == [NOW + timedelta(hours=1), None]


async def test_an_approval_request_issues_no_certificate() -> None:
    """An approval (paraaf) is not signed into the PDF: no key is made and no placeholders are looked for."""
    fake = FakeSignerStore()
    event = await opened(fake, action="approve")
    assert fake.issued == [] and fake.documents[event.document_id].placeholders is None


async def test_a_request_taking_over_another_is_mailed_as_reassigned() -> None:
    """A substitute's request (``replaces`` set) asks for a 'reassigned' mail."""
    fake = FakeSignerStore()
    await opened(fake, replaces=uuid4())
    assert [m.kind for m in fake.sent(SendSigningLink)] == ["reassigned"]


@pytest.mark.parametrize(
    ("arrange", "words"),
    [
        (lambda event: event.model_copy(update={"pdf_sha256": "f" * 64}), "is no version of document"),
        (lambda event: event.model_copy(update={"correlation_id": uuid4()}), "was never accepted"),
        (lambda event: event.model_copy(update={"signer": BART.model_copy(update={"title": ""})}), "is not in the directory"),
        (lambda event: event.model_copy(update={"signer": ANN.model_copy(update={"email": "x@y.be"})}), "name or address differ"),
        (lambda event: event.model_copy(update={"signer": ANN.model_copy(update={"title": "schepen"})}), "holds no role titled"),
        (lambda event: event.model_copy(update={"on_behalf_of": BART}), "represented person `bart`"),
    ],
)
async def test_a_request_the_signer_must_not_act_on_is_refused_for_good(arrange: object, words: str) -> None:
    """Another PDF, an unknown document, an unknown or different person, a role not held: refused, nothing stored or sent."""
    fake = FakeSignerStore()
    fake.in_directory("default", ANN)
    document = await accepted(fake)
    event = arrange(requested(document))  # type: ignore[operator]
    with pytest.raises(PermanentError, match=words):
        await handlers.on_signature_requested(event, fake, links=LINKS)
    assert (fake.requests, fake.published) == ({}, [])


async def test_a_substitute_signs_for_the_role_the_represented_person_holds() -> None:
    """On behalf of Bart (burgemeester), Ann may sign with his title."""
    fake = FakeSignerStore()
    fake.in_directory("default", BART, "burgemeester")
    event = await opened(fake, ANN.model_copy(update={"title": "burgemeester"}), on_behalf_of=BART)
    assert fake.requests[event.request_id].on_behalf_of == BART


async def test_a_reminder_is_mailed_for_an_open_request_only() -> None:
    """A reissue of an open request asks for a reminder; of a cancelled or unknown one, nothing."""
    fake = FakeSignerStore()
    event = await opened(fake)
    await handlers.on_reissue_signing_link(ReissueSigningLink(correlation_id=event.document_id, request_id=event.request_id, reminder=2), fake, links=LINKS)
    await handlers.on_signature_cancelled(SignatureCancelled(correlation_id=event.document_id, request_id=event.request_id, reason="done"), fake)
    await handlers.on_reissue_signing_link(ReissueSigningLink(correlation_id=event.document_id, request_id=event.request_id, reminder=3), fake, links=LINKS)
    await handlers.on_reissue_signing_link(ReissueSigningLink(correlation_id=event.document_id, request_id=uuid4(), reminder=1), fake, links=LINKS)
    assert [(m.kind, m.reminder) for m in fake.sent(SendSigningLink)] == [("request", 0), ("reminder", 2)]


async def test_an_operator_resend_mails_the_open_request_to_the_directory_address_and_names_her() -> None:
    """After the directory's address for Ann changed, a resend mails the request there, keeps that address for later
    mails, and announces signature.mail-resent with the operator; a resend of a closed request does nothing."""
    fake = FakeSignerStore()
    event = await opened(fake)
    fake.in_directory("default", ANN.model_copy(update={"email": "ann@nieuw.be"}))
    resend = ResendSigningMail(correlation_id=event.document_id, request_id=event.request_id, resent_by="operator:iris", reason="adres")
    await handlers.on_resend_signing_mail(resend, fake, links=LINKS)
    [announced] = fake.sent(SigningMailResent)
    assert (announced.signer.email, announced.resent_by, announced.reason) == ("ann@nieuw.be", "operator:iris", "adres")
    assert [(m.kind, m.recipient.email) for m in fake.sent(SendSigningLink)] == [("request", "ann@x.be"), ("request", "ann@nieuw.be")]
    assert fake.requests[event.request_id].signer.email == "ann@nieuw.be"
    await handlers.on_signature_cancelled(SignatureCancelled(correlation_id=event.document_id, request_id=event.request_id, reason="x"), fake)
    await handlers.on_resend_signing_mail(resend.model_copy(update={"command_id": uuid4()}), fake, links=LINKS)
    assert len(fake.sent(SendSigningLink)) == 2 and len(fake.sent(SigningMailResent)) == 1


async def test_a_cancelled_request_keeps_its_reason_and_its_link_stops_working() -> None:
    """After signature.cancelled the request is cancelled with the reason, and its link is refused as cancelled."""
    fake = FakeSignerStore()
    event = await opened(fake)
    token = await token_for(fake, event.request_id)
    await handlers.on_signature_cancelled(SignatureCancelled(correlation_id=event.document_id, request_id=event.request_id, reason="any step done"), fake)
    assert (fake.requests[event.request_id].status, fake.requests[event.request_id].status_reason) == ("cancelled", "any step done")
    with pytest.raises(LinkRefused, match="cancelled"):
        await signing.open_link(fake, token, NOW)


async def test_a_reassigned_request_is_closed_as_reassigned() -> None:
    """After signature.reassigned the absent person's request is 'reassigned', and no new link is made for it."""
    fake = FakeSignerStore()
    event = await opened(fake)
    moved = SignatureReassigned(
        correlation_id=event.document_id, request_id=event.request_id, new_request_id=uuid4(), from_person=ANN, to_person=BART, reason="absent"
    )
    await handlers.on_signature_reassigned(moved, fake)
    assert fake.requests[event.request_id].status == "reassigned"
    with pytest.raises(LinkGone):
        await handlers.mint_signing_link(fake, event.request_id, uuid4(), links=LINKS)


@pytest.mark.parametrize(
    "ended",
    [
        lambda d: DocumentDeclined(correlation_id=d, declined_by=ANN, reason="nee"),
        lambda d: DocumentWithdrawn(correlation_id=d, withdrawn_by="elen", reason="fout"),
    ],
)
async def test_a_document_that_ended_closes_its_open_requests(ended: object) -> None:
    """Declined or withdrawn: open requests are cancelled saying why, and the document's status follows."""
    fake = FakeSignerStore()
    event = await opened(fake)
    end = ended(event.document_id)  # type: ignore[operator]
    await handlers.on_document_ended(end, fake)
    status = end.routing_key.removeprefix("document.")
    assert fake.requests[event.request_id].status_reason == f"the document was {status}"
    assert fake.documents[event.document_id].status == status


def completed(event: SignatureRequested, submitter: PersonRef | None = ELEN) -> DocumentCompleted:
    return DocumentCompleted(correlation_id=event.document_id, pdf_sha256="e" * 64, signatures=[], title="Besluit 7", submitted_by=submitter)


async def test_a_completed_document_offers_the_submitter_a_download_link() -> None:
    """On completion the submitter is granted the signed PDF, a download mail is asked for, and its link can be made."""
    fake = FakeSignerStore()
    event = await opened(fake)
    await handlers.on_document_completed(completed(event), fake, links=LINKS)
    (mail,) = fake.sent(SendDownloadLink)
    assert (mail.recipient, mail.expires_at) == (ELEN, NOW + LINKS.download_ttl)
    made = await handlers.mint_download_link(fake, event.document_id, "elen", uuid4(), links=LINKS)
    assert made.url.startswith("https://sign.test/d/") and fake.documents[event.document_id].status == "completed"
    assert [d.filename for d in fake.downloads.values()] == ["besluit-7.pdf"]


async def test_a_completed_document_without_a_submitter_address_offers_nothing() -> None:
    """No submitter (or one without an address): the document closes, no download mail and no link."""
    fake = FakeSignerStore()
    event = await opened(fake)
    await handlers.on_document_completed(completed(event, None), fake, links=LINKS)
    assert fake.sent(SendDownloadLink) == [] and fake.documents[event.document_id].status == "completed"
    with pytest.raises(LinkGone):
        await handlers.mint_download_link(fake, event.document_id, "elen", uuid4(), links=LINKS)


async def test_a_mail_that_failed_has_its_link_revoked() -> None:
    """notification.failed revokes the link made for that mail; the link of another mail still works."""
    fake = FakeSignerStore()
    event = await opened(fake)
    failed_mail = uuid4()
    await handlers.mint_signing_link(fake, event.request_id, failed_mail, links=LINKS)
    (token_hash,) = fake.tokens
    failed = NotificationFailed(correlation_id=event.document_id, causation_id=failed_mail, kind="request", recipient="ann@x.be", reason="550")
    await handlers.on_notification_failed(failed, fake)
    assert fake.tokens[token_hash].revoked_at is not None
    await signing.open_link(fake, await token_for(fake, event.request_id), NOW)


async def test_a_new_link_revokes_the_earlier_one() -> None:
    """A reminder's link replaces the first one: the first is refused as revoked."""
    fake = FakeSignerStore()
    event = await opened(fake)
    first = await token_for(fake, event.request_id)
    await token_for(fake, event.request_id)
    with pytest.raises(LinkRefused, match="revoked"):
        await signing.open_link(fake, first, NOW)


async def test_signing_puts_a_new_version_in_the_document_and_announces_it() -> None:
    """Sign: the PDF is signed with the signer's credentials, stored as revision 1, the link spent, signature.signed published."""
    fake, pdf_signer = FakeSignerStore(), FakePdfSigner()
    event = await opened(fake)
    token = await token_for(fake, event.request_id)
    done = await signing.sign(fake, token, now=NOW, pdf_signer=pdf_signer, stamping=signing.Stamping())
    (signed,) = fake.sent(Signed)
    document = fake.documents[event.document_id]
    assert (done.action, done.language, done.field_name) == ("sign", "fr", "Signature1")
    assert (document.revision, await fake.blob(document.pdf_sha256)) == (1, PDF + b" signed")
    assert (signed.revision, signed.pdf_sha256, pdf_signer.jobs[0].cert_der) == (1, document.pdf_sha256, b"cert of ann")
    with pytest.raises(LinkRefused, match="used"):
        await signing.open_link(fake, token, NOW)


class FooterPrintingPdfSigner(FakePdfSigner):
    """As the signing pool does when the PDF had no signature yet: the footer it was given is printed."""

    async def sign(self, job: SigningJob) -> SigningResult:
        return replace(await super().sign(job), footer_stamped=job.footer is not None)


async def test_the_first_signature_prints_a_new_code_whose_secret_is_kept_only_as_a_keyed_hash() -> None:
    """The first signature's job carries the footer (check address, code, secret; in the signer's French); the store
    keeps the code for the document with the HMAC of the secret, and the secret nowhere."""
    fake, pdf_signer = FakeSignerStore(), FooterPrintingPdfSigner()
    event = await opened(fake)
    stamping = signing.Stamping(check_url="https://sign.test/check", check_key=b"k" * 32)
    await signing.sign(fake, await token_for(fake, event.request_id), now=NOW, pdf_signer=pdf_signer, stamping=stamping)
    footer = pdf_signer.jobs[0].footer or ""
    printed = re.fullmatch(r"Vérifier l'authenticité sur https://sign\.test/check avec le code ([\d ]{19}) et le secret (\S{9})", footer)
    assert printed is not None, footer
    code, secret = printed.group(1).replace(" ", ""), printed.group(2).replace("-", "")
    assert fake.codes == {code: (event.document_id, secret_hash(b"k" * 32, code, secret))}


async def test_a_code_the_worker_could_not_print_is_not_kept() -> None:
    """When the PDF came signed by someone else (the worker prints no footer), no code is left for the document."""
    fake, pdf_signer = FakeSignerStore(), FakePdfSigner()
    event = await opened(fake)
    stamping = signing.Stamping(check_url="https://sign.test/check", check_key=b"k" * 32)
    await signing.sign(fake, await token_for(fake, event.request_id), now=NOW, pdf_signer=pdf_signer, stamping=stamping)
    assert pdf_signer.jobs[0].footer is not None and fake.codes == {}


async def test_approving_records_the_decision_without_touching_the_pdf() -> None:
    """Approve: no signature in the PDF; the request is signed and signature.signed carries the unchanged version."""
    fake, pdf_signer = FakeSignerStore(), FakePdfSigner()
    event = await opened(fake, action="approve")
    done = await signing.sign(fake, await token_for(fake, event.request_id), now=NOW, pdf_signer=pdf_signer, stamping=signing.Stamping())
    (signed,) = fake.sent(Signed)
    assert (done.action, pdf_signer.jobs, signed.revision, signed.pdf_sha256) == ("approve", [], 0, event.pdf_sha256)
    assert fake.requests[event.request_id].status == "signed"


async def test_a_later_step_cannot_sign_before_an_earlier_one() -> None:
    """Step 2's link is refused as 'not yet' while step 1 is open on the same document."""
    fake = FakeSignerStore()
    first = await opened(fake)
    fake.in_directory("default", BART, "burgemeester")
    second = requested((first.document_id, first.pdf_sha256), BART, step=2)
    await handlers.on_signature_requested(second, fake, links=LINKS)
    with pytest.raises(LinkRefused, match="not_yet"):
        await signing.sign(fake, await token_for(fake, second.request_id), now=NOW, pdf_signer=FakePdfSigner(), stamping=signing.Stamping())


async def test_an_expired_link_is_refused_by_the_services_clock() -> None:
    """A link is judged at the clock's 'now': 21 days later it no longer signs."""
    fake = FakeSignerStore()
    event = await opened(fake)
    token = await token_for(fake, event.request_id)
    with pytest.raises(LinkRefused, match="expired"):
        await signing.sign(fake, token, now=NOW + LINKS.ttl, pdf_signer=FakePdfSigner(), stamping=signing.Stamping())


async def test_declining_records_the_reason_and_announces_it() -> None:
    """Decline with a reason: the request is declined with it, the link spent, signature.declined published."""
    fake = FakeSignerStore()
    event = await opened(fake)
    done = await signing.decline(fake, await token_for(fake, event.request_id), "  wrong amount ", now=NOW)
    (declined,) = fake.sent(SignatureDeclined)
    assert (done.action, declined.reason, fake.requests[event.request_id].status) == ("decline", "wrong amount", "declined")


async def test_declining_without_a_reason_is_refused() -> None:
    """A blank reason: refused, the request stays open and nothing is announced."""
    fake = FakeSignerStore()
    event = await opened(fake)
    with pytest.raises(ReasonRequired):
        await signing.decline(fake, await token_for(fake, event.request_id), "   ", now=NOW)
    assert fake.requests[event.request_id].open and fake.sent(SignatureDeclined) == []
