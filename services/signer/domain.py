"""The signer's rules, on its own records: whether a signature request may be
opened, whether a link may be used (and if not, why), the order of the steps,
that a decline needs a reason, and how long links work. No I/O here: the
handlers and routes load what a rule needs, ask it, and write what it says."""

from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from services.signer.pades import Placeholder
from shared.events import PersonRef, SignatureRequested
from shared.messaging import PermanentError
from shared.visibility import DocumentFacts, Viewer

__all__ = [
    "DirectoryPerson",
    "Download",
    "LinkGone",
    "LinkRefused",
    "Links",
    "MintedLink",
    "PolicyFacts",
    "ReasonRequired",
    "SignerDocument",
    "SigningLink",
    "SigningRequest",
    "check_download",
    "check_link",
    "check_request",
    "decline_reason",
    "earlier_step_open",
    "ensure_mintable",
    "request_from",
]

ENDED = ("completed", "declined", "withdrawn")


@dataclass(frozen=True)
class SigningRequest:
    """One person asked to sign (or approve) one step of a document."""

    request_id: UUID
    document_id: UUID
    org: str
    step: int
    step_count: int
    action: str
    signer: PersonRef
    on_behalf_of: PersonRef | None
    title: str
    filename: str
    submitted_by: PersonRef
    confidential: bool = False
    signature_count: int | None = None
    status: str = "pending"
    status_reason: str | None = None
    field_name: str | None = None
    decided_at: datetime | None = None

    @property
    def open(self) -> bool:
        return self.status == "pending"


@dataclass(frozen=True)
class SignerDocument:
    """A document as the signer has it: its current PDF, how many signatures Paraaf put in, whether it still runs."""

    document_id: UUID
    org: str
    pdf_sha256: str
    revision: int = 0
    status: str = "active"
    placeholders: tuple[Placeholder, ...] | None = None  # None: not looked for yet


@dataclass(frozen=True)
class PolicyFacts:
    """What the visibility policy weighs for a link: its person as a viewer and its document's facts, as the router
    has them (None where it has not)."""

    viewer: Viewer | None
    document: DocumentFacts | None


@dataclass(frozen=True)
class SigningLink:
    """A signing link's token with its request, its document and the steps of the document still open; ``policy``:
    the visibility policy's facts when they were read with it (None: they are still to be read)."""

    token_hash: bytes
    person_id: str
    expires_at: datetime
    request: SigningRequest
    document: SignerDocument
    used_at: datetime | None = None
    revoked_at: datetime | None = None
    open_steps: tuple[int, ...] = ()
    policy: PolicyFacts | None = None


@dataclass(frozen=True)
class Download:
    """A link to a completed document's signed PDF, for the person it was granted to."""

    token_hash: bytes
    document_id: UUID
    org: str
    person_id: str
    pdf_sha256: str
    filename: str
    expires_at: datetime
    revoked_at: datetime | None = None


@dataclass(frozen=True)
class DirectoryPerson:
    id: str
    name: str
    email: str


@dataclass(frozen=True)
class Links:
    """How links are made: where the page lives, how long a link works, what time it is."""

    public_url: str
    ttl: timedelta
    clock: Callable[[], datetime]
    download_ttl: timedelta = timedelta(days=7)
    portal_of: Callable[[str], str] | None = None  # an organisation's own portal URL (many cities on one signer)

    def url(self, kind: str, token: str, org: str | None = None) -> str:
        """The link, on the portal of ``org`` when it has one of its own (its pages refuse another org's links)."""
        base = self.portal_of(org) if org is not None and self.portal_of is not None else self.public_url
        return f"{base.rstrip('/')}/{kind}/{token}"

    def signing_expiry(self) -> datetime:
        return self.clock() + self.ttl

    def download_expiry(self) -> datetime:
        return self.clock() + self.download_ttl


@dataclass(frozen=True)
class MintedLink:
    url: str
    expires_at: datetime


class LinkGone(LookupError):
    """No link can be made: the request is no longer open, or there is nothing to download."""


class LinkRefused(Exception):
    """The link cannot be used; ``code`` names why (the page says it in the reader's language)."""

    def __init__(self, code: str, status: int = 410, detail: str | None = None, language: str = "nl") -> None:
        super().__init__(code)
        self.code = code
        self.status = status
        self.detail = detail
        self.language = language  # the link's person's, to say it in their words


class ReasonRequired(ValueError):
    """A decline without a reason; ``link`` is the (usable) link it was meant for."""

    def __init__(self, link: SigningLink) -> None:
        super().__init__("a decline needs a reason")
        self.link = link


def request_from(event: SignatureRequested) -> SigningRequest:
    return SigningRequest(
        request_id=event.request_id, document_id=event.document_id, org=event.org, step=event.step,
        step_count=event.step_count, action=event.action, signer=event.signer, on_behalf_of=event.on_behalf_of,
        title=event.title, filename=event.filename, submitted_by=event.submitted_by,
        confidential=event.confidential, signature_count=event.signature_count,
    )


def _check_person(found: DirectoryPerson | None, org: str, person: PersonRef, what: str) -> None:
    if found is None:
        raise PermanentError(f"{what} `{person.id}` is not in the directory of `{org}`")
    if (found.name, found.email.lower()) != (person.name, person.email.lower()):
        raise PermanentError(f"{what} `{person.id}` is not who the directory says (name or address differ)")


def check_request(
    event: SignatureRequested,
    versions: list[str],
    people: dict[str, DirectoryPerson | None],
    held_titles: Collection[str],
) -> str:
    """Refuse a request the signer must not act on; the PDF intake accepted for the document otherwise.

    ``people`` are the signer and the represented person as the directory has them;
    ``held_titles`` the role titles the represented person holds."""
    if not versions:
        raise PermanentError(f"document {event.document_id} was never accepted by intake for `{event.org}`")
    if event.pdf_sha256 not in versions:
        raise PermanentError(f"PDF {event.pdf_sha256} is no version of document {event.document_id}")
    _check_person(people.get(event.signer.id), event.org, event.signer, "signer")
    represented = event.on_behalf_of or event.signer
    if event.on_behalf_of is not None:
        _check_person(people.get(represented.id), event.org, represented, "represented person")
    if event.signer.title and event.signer.title not in held_titles:
        raise PermanentError(f"`{represented.id}` holds no role titled `{event.signer.title}`")
    return versions[0]


def earlier_step_open(link: SigningLink) -> bool:
    """Steps run in order: a request waits while one of an earlier step of its document is open.

    The router only asks the next step once the last one is done, but the
    signer checks too, so no link can jump the queue."""
    return any(step < link.request.step for step in link.open_steps)


def _refusal(link: SigningLink, now: datetime) -> str | None:
    request = link.request
    if request.status == "reassigned":
        return "reassigned"
    if link.document.status in ENDED:
        return link.document.status
    if request.status == "cancelled":
        return "cancelled"
    if request.status == "declined":
        return "request_declined"
    if request.status == "signed" or link.used_at is not None:
        return "used"
    if link.revoked_at is not None:
        return "revoked"
    if link.expires_at <= now:
        return "expired"
    return "not_yet" if earlier_step_open(link) else None


def check_link(link: SigningLink | None, now: datetime) -> SigningLink:
    """The rules a link must pass before it shows a form or takes a signature."""
    if link is None or link.person_id != link.request.signer.id:
        raise LinkRefused("unknown", status=404)  # a token is only ever good for the person it was made for
    code = _refusal(link, now)
    if code is not None:
        status = 409 if code == "not_yet" else 410
        raise LinkRefused(code, status=status, detail=link.request.status_reason, language=link.request.signer.language)
    return link


def decline_reason(link: SigningLink, reason: str) -> str:
    """The reason a decline is recorded with; refused when there is none."""
    if not reason.strip():
        raise ReasonRequired(link)
    return reason.strip()


def check_download(download: Download | None, now: datetime) -> Download:
    """A download link works while it is neither revoked nor expired."""
    if download is None:
        raise LinkRefused("unknown", status=404)
    if download.revoked_at is not None:
        raise LinkRefused("revoked")
    if download.expires_at <= now:
        raise LinkRefused("expired")
    return download


def ensure_mintable(request: SigningRequest | None, document: SignerDocument | None, request_id: UUID) -> SigningRequest:
    """A link is made only for an open request of a document that still runs."""
    if request is None or not request.open or document is None or document.status != "active":
        raise LinkGone(f"request {request_id} is not open")
    return request
