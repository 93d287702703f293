"""Domain events: past-tense facts published on exchange ``esign.events``.

Every event is a frozen pydantic model with the same envelope. Changes are
additive and consumers ignore fields they do not know, so a producer can be
upgraded before its consumers.
"""

from datetime import datetime
from typing import Any, ClassVar, Literal, Self
from uuid import UUID, uuid4

from pydantic import BaseModel, ConfigDict, Field

from shared import clock

__all__ = [
    "EVENT_TYPES",
    "WebhookAbandoned",
    "WebhookDelivered",
    "IncidentDismissed",
    "Action",
    "Cause",
    "CertificateRevoked",
    "DocumentAccepted",
    "DocumentCompleted",
    "DocumentDeclined",
    "DocumentRejected",
    "DocumentSubmitted",
    "DocumentWithdrawn",
    "DeadLetterDropped",
    "DeadLetterReplayed",
    "Event",
    "NotificationFailed",
    "NotificationSent",
    "PersonRef",
    "RoutingFailed",
    "SignatureCancelled",
    "SignatureDeclined",
    "SignatureReassigned",
    "SignatureRecord",
    "SignatureRequested",
    "SigningMailResent",
    "Signed",
    "StepSpec",
    "TimestampFailed",
    "utcnow",
]

Action = Literal["sign", "approve"]
Mode = Literal["all", "any"]


def utcnow() -> datetime:
    """The services' clock (shared.clock): the wall clock unless a test or demo moved it."""
    return clock.now()


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class Event(Frozen):
    """The envelope. ``correlation_id`` is the document id."""

    routing_key: ClassVar[str]

    event_id: UUID = Field(default_factory=uuid4)
    occurred_at: datetime = Field(default_factory=utcnow)
    correlation_id: UUID
    causation_id: UUID | None = None
    org: str = "default"

    @property
    def document_id(self) -> UUID:
        return self.correlation_id

    @classmethod
    def caused_by(cls, cause: "Event | Cause", **fields: Any) -> Self:
        """A new event in the same document's story, caused by ``cause``."""
        return cls(
            correlation_id=cause.correlation_id,
            causation_id=cause.event_id,
            org=cause.org,
            **fields,
        )

    def to_json(self) -> bytes:
        return self.model_dump_json().encode()


class Cause(Frozen):
    """What caused an event when it was not a message: e.g. an absence starting (``event_id`` = the absence's id)."""

    event_id: UUID
    correlation_id: UUID
    org: str = "default"


class PersonRef(Frozen):
    """A person as an event names them: enough to address and show them."""

    id: str
    name: str
    email: str = ""
    language: str = "nl"
    title: str = ""  # function or mandate they act in, e.g. "burgemeester"


class StepSpec(Frozen):
    """One step of a flow, as a flow file or an ad-hoc submission writes it."""

    action: Action = "sign"
    mode: Mode = "all"
    signers: list[str] = Field(min_length=1)


class SignatureRecord(Frozen):
    """One signature (or approval) in a completed document."""

    request_id: UUID
    step: int
    action: Action
    signer: PersonRef
    on_behalf_of: PersonRef | None = None
    signed_at: datetime
    field_name: str | None = None


class DocumentSubmitted(Event):
    """Intake accepted a submission: the document, its flow (or ad-hoc steps) and its PDF, for the router."""

    routing_key: ClassVar[str] = "document.submitted"

    source: str
    external_ref: str
    title: str
    flow: str | None = None
    steps: list[StepSpec] | None = None
    submitted_by: str
    confidential: bool = False
    filename: str
    language: str = "nl"
    metadata: dict[str, Any] = Field(default_factory=dict)
    pdf_sha256: str
    pdf_size: int
    page_count: int
    due_at: datetime | None = None  # when the submission asks it to be signed by; None: the notifier's default


class DocumentRejected(Event):
    """A submission refused, by intake (the PDF, the message) or the router (flow, submitter)."""

    routing_key: ClassVar[str] = "document.rejected"

    source: str
    external_ref: str | None = None
    code: str
    reason: str


class DocumentAccepted(Event):
    """The router found the flow and the submitter: the document is under way."""

    routing_key: ClassVar[str] = "document.accepted"

    flow: str | None
    step_count: int
    department: str | None = None
    group: str | None = None


class SignatureRequested(Event):
    """The router asks one person to sign (or approve) one step of a document, possibly on behalf of another."""

    routing_key: ClassVar[str] = "signature.requested"

    request_id: UUID
    step: int
    step_count: int
    action: Action = "sign"
    signer: PersonRef
    on_behalf_of: PersonRef | None = None
    reason: str | None = None  # why a substitute was asked, e.g. "absent"
    title: str
    filename: str
    submitted_by: PersonRef
    pdf_sha256: str
    confidential: bool = False
    replaces: UUID | None = None  # the request this one takes over (reassigned to a substitute)
    # PAdES signatures the finished document will hold (every `sign` signer of every
    # step), when the router knows it: the signer then certifies the first
    # signature and prepares a visible field for each later one.
    signature_count: int | None = None
    due_at: datetime | None = None  # the document's due date, when its submission named one


class Signed(Event):
    """A person signed (or approved) through their link; the signer put the signature in the PDF."""

    routing_key: ClassVar[str] = "signature.signed"

    request_id: UUID
    step: int
    action: Action
    signer: PersonRef
    on_behalf_of: PersonRef | None = None
    signed_at: datetime
    pdf_sha256: str
    revision: int  # number of signatures in the PDF after this one
    field_name: str | None = None


class SignatureDeclined(Event):
    """A person declined to sign, with a reason; the flow stops."""

    routing_key: ClassVar[str] = "signature.declined"

    request_id: UUID
    step: int
    signer: PersonRef
    reason: str


class SignatureCancelled(Event):
    """A request no longer needed (its ``any`` step was completed by someone else, or the flow ended)."""

    routing_key: ClassVar[str] = "signature.cancelled"

    request_id: UUID
    reason: str


class SignatureReassigned(Event):
    """A request moved from an absent person to their substitute."""

    routing_key: ClassVar[str] = "signature.reassigned"

    request_id: UUID
    new_request_id: UUID
    from_person: PersonRef
    to_person: PersonRef
    reason: str
    title: str = ""  # the document's, so the absent person can be told what moved


class DocumentCompleted(Event):
    """Every step is done: the signed PDF and its signatures, for the source and the submitter."""

    routing_key: ClassVar[str] = "document.completed"

    pdf_sha256: str
    signatures: list[SignatureRecord]
    title: str = ""
    submitted_by: PersonRef | None = None


class DocumentDeclined(Event):
    """A signer declined: the document stops here."""

    routing_key: ClassVar[str] = "document.declined"

    declined_by: PersonRef
    reason: str
    title: str = ""
    submitted_by: PersonRef | None = None


class DocumentWithdrawn(Event):
    """The submitter or an operator stopped the document."""

    routing_key: ClassVar[str] = "document.withdrawn"

    withdrawn_by: str
    reason: str


class RoutingFailed(Event):
    """Nobody in a signer's row is available: an operator should look."""

    routing_key: ClassVar[str] = "routing.unresolved"

    request_id: UUID
    signer: PersonRef
    reason: str


class NotificationSent(Event):
    """A mail was delivered (recipient, kind, subject; never its link)."""

    routing_key: ClassVar[str] = "notification.sent"

    kind: str
    recipient: str
    subject: str
    request_id: UUID | None = None  # of a signing-link mail, so a later mail shows an earlier failure was mended


class NotificationFailed(Event):
    """A mail could not be delivered, for good; its link was revoked."""

    routing_key: ClassVar[str] = "notification.failed"

    kind: str
    recipient: str
    reason: str
    request_id: UUID | None = None  # of a signing-link mail: what `paraaf document resend` sends again


class DeadLetterDropped(Event):
    """An operator removed a dead letter for good (``paraaf dlq drop``): who, which message, and why.
    ``correlation_id`` is the document the message concerned, or the message's own id when it names none."""

    routing_key: ClassVar[str] = "dead_letter.dropped"

    queue: str  # the dead-letter or holding queue it was taken from
    message_id: str
    original_routing_key: str
    publisher: str  # the broker user that first published it ("" when it did not say)
    dead_lettered_because: str  # its x-paraaf-reason (and x-paraaf-error), or the broker's x-death reason
    body_sha256: str
    dropped_by: str
    reason: str


class DeadLetterReplayed(Event):
    """An operator sent a dead letter back to be handled again once its cause was fixed (``paraaf dlq replay``):
    who, which message, and why it had failed. ``correlation_id`` as for :class:`DeadLetterDropped`."""

    routing_key: ClassVar[str] = "dead_letter.replayed"

    queue: str  # the dead-letter or holding queue it was taken from
    message_id: str
    original_routing_key: str
    publisher: str
    dead_lettered_because: str
    body_sha256: str
    replayed_by: str


class IncidentDismissed(Event):
    """An operator decided an incident needs nothing more (``paraaf incidents dismiss``): which, who, and why.
    ``correlation_id`` is the incident's document, or a fixed id derived from the incident when it has none."""

    routing_key: ClassVar[str] = "incident.dismissed"

    incident: str  # e.g. routing:<request id>, mail:<event id>, stuck:<document id>, dead_letters:<queue>
    dismissed_by: str
    reason: str


class SigningMailResent(Event):
    """An operator had a still-open request mailed again (``paraaf document resend``, or the incidents page), to
    the address the directory holds now; the earlier links of the request stop working once the new mail's is made."""

    routing_key: ClassVar[str] = "signature.mail-resent"

    request_id: UUID
    signer: PersonRef  # as the directory has her now: the address the mail goes to
    resent_by: str  # operator:<who>
    reason: str


class TimestampFailed(Event):
    """A signature could not be made because the time-stamping service (PARAAF_TSA_URL) failed: nothing was signed,
    the signer's link still works; an operator should look at the TSA."""

    routing_key: ClassVar[str] = "timestamp.failed"

    request_id: UUID
    tsa_url: str
    reason: str


class CertificateRevoked(Event):
    """An operator revoked a signer's certificate (``paraaf ca revoke``): the org's CRL lists it from now on;
    signatures made with it before stay valid. ``correlation_id`` is derived from the certificate (no document)."""

    routing_key: ClassVar[str] = "certificate.revoked"

    person_id: str
    title: str  # the function the certificate was for; "" for the person's own
    name: str
    serial: str  # hexadecimal, as certificate viewers show it
    reason: str
    revoked_by: str


class WebhookAbandoned(Event):
    """Intake gave up delivering an outcome to a source's webhook after PARAAF_WEBHOOK_RETRY_HOURS: the outcome
    stays in the source's outcomes queue, and an operator redelivers it (``paraaf sources redeliver``) once the
    receiver answers. ``correlation_id`` is the document (the delivery's id when the outcome names none)."""

    routing_key: ClassVar[str] = "webhook.abandoned"

    delivery_id: UUID
    source: str
    url: str
    attempts: int
    reason: str


class WebhookDelivered(Event):
    """A webhook delivery intake had given up on reached its receiver after an operator redelivered it."""

    routing_key: ClassVar[str] = "webhook.delivered"

    delivery_id: UUID
    source: str
    attempts: int


EVENT_TYPES: dict[str, type[Event]] = {
    cls.routing_key: cls
    for cls in (
        DocumentSubmitted,
        DocumentRejected,
        DocumentAccepted,
        SignatureRequested,
        Signed,
        SignatureDeclined,
        SignatureReassigned,
        SignatureCancelled,
        DocumentCompleted,
        DocumentDeclined,
        DocumentWithdrawn,
        RoutingFailed,
        NotificationSent,
        NotificationFailed,
        DeadLetterDropped,
        DeadLetterReplayed,
        IncidentDismissed,
        CertificateRevoked,
        SigningMailResent,
        TimestampFailed,
        WebhookAbandoned,
        WebhookDelivered,
    )
}
