"""Messages that are not domain events: the external contract with the systems
that submit documents (``esign.intake`` in, ``esign.outcomes`` out) and the
commands services send each other on ``esign.commands``.

Commands are imperatives (``SendSigningLink``); they travel on their own
exchange, apart from the audited event stream. None carries a link: links
exist only in the signer (as hashes) and in the mail itself.
"""

import base64
import binascii
from datetime import datetime
from typing import Any, ClassVar, Literal
from uuid import UUID, uuid4

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from shared.events import PersonRef, SignatureRecord, StepSpec, utcnow

__all__ = [
    "COMMAND_TYPES",
    "LANGUAGES",
    "SOURCE_NAME",
    "Language",
    "Command",
    "Outcome",
    "QueryStatus",
    "ReassignRequest",
    "RegisterAbsence",
    "ReissueSigningLink",
    "ResendSigningMail",
    "SendDownloadLink",
    "SendSignInLink",
    "SendSigningLink",
    "StatusReport",
    "SubmitDocument",
    "WithdrawSubmission",
    "WithdrawDocument",
    "describe_validation_error",
]

SOURCE_NAME = r"[A-Za-z0-9_-]{1,64}"  # a source's name: its routing key is submit.<source>
LANGUAGES = ("nl", "fr", "en")
Language = Literal["nl", "fr", "en"]


class SubmitDocument(BaseModel):
    """What an integrating system publishes on ``esign.intake``, ``submit.<source>``."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)
    routing_prefix: ClassVar[str] = "submit."

    source: str = Field(pattern=rf"^{SOURCE_NAME}$")
    external_ref: str = Field(min_length=1, max_length=200)
    title: str = Field(min_length=1, max_length=500)
    flow: str | None = Field(default=None, min_length=1)
    steps: list[StepSpec] | None = Field(default=None, min_length=1)
    submitted_by: str = Field(min_length=1)
    confidential: bool = False
    filename: str = Field(default="document.pdf", min_length=1, max_length=255)
    pdf: bytes
    language: Language = "nl"
    metadata: dict[str, Any] = Field(default_factory=dict)
    org: str | None = Field(default=None, min_length=1)  # the source's own org when left out
    # When the signing should be done by: the mails show it and the reminders follow it. Intake refuses one
    # that has passed or that falls after the link's lifetime (PARAAF_LINK_TTL_HOURS).
    due_at: datetime | None = None

    @model_validator(mode="before")
    @classmethod
    def _no_nul(cls, data: Any) -> Any:
        """PostgreSQL cannot store U+0000 in text; refuse it here, as the sender's mistake, not retry it as ours."""
        if (where := _nul_in(data)) is not None:
            raise ValueError(f"field `{where}` contains a NUL character (\\u0000), which no text may hold; remove it")
        return data

    @field_validator("pdf", mode="before")
    @classmethod
    def _decode_base64(cls, value: Any) -> bytes:
        if not isinstance(value, str):
            raise ValueError("must be the PDF as a base64 string")
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("is not valid base64") from None

    @field_validator("due_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.utcoffset() is None:
            raise ValueError("must name its time zone, e.g. `2026-11-30T15:00:00+01:00` or `2026-11-30T14:00:00Z`")
        return value

    @model_validator(mode="after")
    def _one_flow(self) -> "SubmitDocument":
        if (self.flow is None) == (self.steps is None):
            raise ValueError("give exactly one of `flow` (a flow key) or `steps` (an ad-hoc flow)")
        return self


def _nul_in(value: Any, where: str = "") -> str | None:
    """The path of the first string (key or value) holding U+0000, or None."""
    if isinstance(value, str):
        return where if "\x00" in value else None
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        path = f"{where}.{key}".lstrip(".").replace("\x00", "\\u0000")
        if isinstance(key, str) and "\x00" in key:
            return path
        if (found := _nul_in(item, path)) is not None:
            return found
    return None


def describe_validation_error(exc: ValidationError) -> str:
    """One sentence per problem, naming the field, e.g. "missing field `title`"."""
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"])
        if error["type"] == "missing":
            parts.append(f"missing field `{where}`")
        elif where:
            parts.append(f"field `{where}` {error['msg'].removeprefix('Value error, ')}")
        else:
            parts.append(error["msg"].removeprefix("Value error, "))
    return "; ".join(parts)


class Outcome(BaseModel):
    """What Paraaf publishes on ``esign.outcomes`` with routing key ``<source>.<status>``."""

    model_config = ConfigDict(frozen=True)

    outcome_id: UUID = Field(default_factory=uuid4)
    occurred_at: datetime = Field(default_factory=utcnow)
    source: str
    external_ref: str | None
    document_id: UUID | None
    status: Literal["accepted", "rejected", "completed", "declined", "withdrawn"]
    reason: str | None = None
    code: str | None = None
    pdf: str | None = None  # base64 of the signed PDF
    signatures: list[SignatureRecord] = Field(default_factory=list)

    @property
    def routing_key(self) -> str:
        return f"{self.source}.{self.status}"


class WithdrawSubmission(BaseModel):
    """What a source publishes on ``esign.intake``, ``withdraw.<source>``, to stop one of its own documents while it
    is being signed. It is answered on ``esign.outcomes``: ``<source>.withdrawn`` once it is stopped, or
    ``<source>.status`` (with ``code`` and ``reason``) when it cannot be."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)
    routing_prefix: ClassVar[str] = "withdraw."

    source: str = Field(pattern=rf"^{SOURCE_NAME}$")
    external_ref: str = Field(min_length=1, max_length=200)
    reason: str = Field(min_length=1, max_length=2000)


class QueryStatus(BaseModel):
    """What a source publishes on ``esign.intake``, ``status.<source>``, to ask where one of its documents stands.
    It is answered on ``esign.outcomes``, ``<source>.status`` (a :class:`StatusReport`), in the source's own
    outcomes queue like every other answer; ``in_reply_to`` carries the question's AMQP message id."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)
    routing_prefix: ClassVar[str] = "status."

    source: str = Field(pattern=rf"^{SOURCE_NAME}$")
    external_ref: str = Field(min_length=1, max_length=200)


class StatusReport(Outcome):
    """Paraaf's answer to a :class:`QueryStatus` (``query`` "status") or to a :class:`WithdrawSubmission` it could not
    carry out (``query`` "withdraw", with ``code`` and ``reason``), on ``esign.outcomes`` as ``<source>.status``.
    ``status`` is where the document stands; ``unknown`` when the source never submitted that reference."""

    status: Literal[  # type: ignore[assignment]
        "submitted", "accepted", "rejected", "completed", "declined", "withdrawn", "unknown"
    ]
    query: Literal["status", "withdraw"] = "status"
    in_reply_to: str | None = None

    @property
    def routing_key(self) -> str:
        return f"{self.source}.status"


class Command(BaseModel):
    """The envelope of a command: ``command_id`` (also the AMQP message id and the receiver's
    inbox key), ``correlation_id`` (the document id), ``causation_id``, ``org``."""

    model_config = ConfigDict(frozen=True, extra="ignore")
    routing_key: ClassVar[str]

    command_id: UUID = Field(default_factory=uuid4)
    correlation_id: UUID
    causation_id: UUID | None = None
    org: str = "default"


class SendSigningLink(Command):
    """Signer → notifier: mail this person a link to their request (made by the signer at send time)."""

    routing_key: ClassVar[str] = "notify.signing-link"

    kind: Literal["request", "reminder", "reassigned"] = "request"
    reminder: int = 0  # which reminder this is, for kind "reminder"
    request_id: UUID
    recipient: PersonRef
    on_behalf_of: PersonRef | None = None
    title: str
    submitted_by: PersonRef
    step: int
    step_count: int
    action: str
    # No link: the notifier asks the signer for one when it sends the mail. The link will
    # work at least until this moment (it is made later, so it works a little longer).
    expires_at: datetime
    # When the request should be done by, if its submission named a date; without one the
    # notifier shows a default (PARAAF_DUE_AFTER working days after the request).
    due_at: datetime | None = None


class ReissueSigningLink(Command):
    """Notifier → signer: a reminder is due; mail the signer a fresh link if the request is still open."""

    routing_key: ClassVar[str] = "signer.reissue-link"

    request_id: UUID
    reminder: int  # 1 for the first reminder


class SendDownloadLink(Command):
    """Signer → notifier: the document is complete; mail the submitter a link to the signed PDF
    (made by the signer at send time)."""

    routing_key: ClassVar[str] = "notify.download-link"

    recipient: PersonRef
    title: str
    signatures: list[SignatureRecord] = Field(default_factory=list)
    expires_at: datetime  # the download link, made when the mail is sent, works at least until then


class SendSignInLink(Command):
    """Signer (the portal) → notifier: mail this person a one-time sign-in link (made by the signer at send time).
    ``correlation_id`` is the sign-in attempt: the notifier asks the signer for that attempt's link."""

    routing_key: ClassVar[str] = "notify.sign-in-link"

    recipient: PersonRef
    expires_at: datetime  # the link, made when the mail is sent, works at least until then (15 minutes)


class WithdrawDocument(Command):
    """Signer (the portal) → router: a signed-in person withdraws a document; the portal checked she is its
    submitter or an operator, and the router checks it again. ``correlation_id`` is the document."""

    routing_key: ClassVar[str] = "router.withdraw"

    withdrawn_by: str  # her directory id, from her session (never a name typed in a form)
    reason: str = Field(min_length=1, max_length=2000)


class RegisterAbsence(Command):
    """Signer (the portal) → router: a person will be away; the portal checked who may say so (herself, or an
    admin). ``correlation_id`` is the absence's own id."""

    routing_key: ClassVar[str] = "router.register-absence"

    person_id: str
    starts_at: datetime
    ends_at: datetime  # the first moment back
    registered_by: str  # the signed-in person's directory id
    note: str = Field(default="", max_length=500)


class ResendSigningMail(Command):
    """Operator (``paraaf document resend``, as the operator's broker user) → signer: mail this still-open request
    again, to the address the directory holds now (after the operator mended it). ``correlation_id`` is the document."""

    routing_key: ClassVar[str] = "signer.resend-mail"

    request_id: UUID
    resent_by: str  # operator:<who>
    reason: str = Field(min_length=1, max_length=2000)


class ReassignRequest(Command):
    """Signer (the portal's incidents page) → router: an operator moves a waiting request to another person; the
    portal checked she is an operator, and the router checks it again. ``correlation_id`` is the document."""

    routing_key: ClassVar[str] = "router.reassign"

    request_id: UUID
    to_person: str = Field(min_length=1, max_length=200)
    reassigned_by: str  # operator:<her directory id>, from her session
    reason: str = Field(min_length=1, max_length=2000)


COMMAND_TYPES: dict[str, type[Command]] = {
    command.routing_key: command
    for command in (SendSigningLink, ReissueSigningLink, SendDownloadLink, SendSignInLink, WithdrawDocument, RegisterAbsence,
                    ResendSigningMail, ReassignRequest)
}
