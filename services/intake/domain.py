"""Intake's rules, pure: how a submission is read and what it may be refused
for (the message, the PDF, what its source may do), whether a second
submission of a reference is the same one, and the filename a PDF is passed
on under. Bytes and facts in, a verdict out.

We parse the file with the same library that will sign it, so a PDF we accept
is one we can sign.
"""

import json
import re
import unicodedata
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import ValidationError

from services.intake.pdf import Limits, describe_size, inspect_pdf
from services.intake.sources import SourcePolicy
from shared.contract import SOURCE_NAME, SubmitDocument, describe_validation_error
from shared.errors import CodedError

__all__ = [
    "Examined",
    "SourcePolicy",
    "Submission",
    "authorise",
    "check_due",
    "check_sender",
    "examine",
    "examine_command",
    "oversized",
    "read_submission",
    "resubmission",
    "safe_filename",
    "source_of",
    "timely",
]

# Which filenames intake passes on.

_UNSAFE_IN_NAME = re.compile(r'[\x00-\x1f\x7f"*/:<>?\\|]')
MAX_FILENAME = 120


def safe_filename(name: str) -> str:
    """The name a PDF is stored and offered under: no path, no control or reserved characters,
    at most :data:`MAX_FILENAME` characters, ending in ``.pdf``."""
    name = unicodedata.normalize("NFC", name).replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c for c in name if unicodedata.category(c) not in ("Cc", "Cf", "Cs", "Co"))
    name = " ".join(_UNSAFE_IN_NAME.sub("_", name).split()).strip(" .")
    stem = name[:-4] if name.lower().endswith(".pdf") else name
    stem = stem[: MAX_FILENAME - 4].rstrip(" .") or "document"
    return f"{stem}.pdf"


# Which submissions a source may make (`paraaf sources add`).


def authorise(policy: SourcePolicy, *, org: str | None, flow: str | None, has_steps: bool, submitted_by: str) -> str:
    """The org the submission goes to, or CodedError saying what the source may not do."""
    who = f"source `{policy.source}`"
    if org is not None and org != policy.org:
        raise CodedError("forbidden_org", f"{who} submits for organisation `{policy.org}`, not `{org}`; leave out `org` or ask an administrator")
    if has_steps and not policy.ad_hoc_steps:
        raise CodedError("forbidden_steps", f"{who} may not send its own `steps`; name one of its flows in `flow`")
    if flow is not None and policy.flows is not None and flow not in policy.flows:
        allowed = ", ".join(f"`{f}`" for f in sorted(policy.flows)) or "none"
        raise CodedError("forbidden_flow", f"{who} may not use flow `{flow}`; its flows are {allowed}")
    if policy.submitters is not None and submitted_by not in policy.submitters:
        raise CodedError("forbidden_submitter", f"{who} may not submit on behalf of `{submitted_by}`; ask an administrator to allow them")
    return policy.org


# How a submission is read.


@dataclass(frozen=True)
class Submission:
    """A message as it arrived on ``esign.intake``: nothing in its body is trusted yet.

    ``publisher`` is the source whose broker user published it (RabbitMQ checked the
    ``user_id``); None when the message did not carry one.
    """

    routing_key: str
    body: bytes
    publisher: str | None = None
    content_type: str | None = None


@dataclass(frozen=True)
class Examined:
    """A submission after its (CPU-bound) checks: either a command with its PDF's facts, or a refusal."""

    submission: Submission
    command: SubmitDocument | None = None
    page_count: int = 0
    refusal: CodedError | None = None


_SOURCE = re.compile(rf"^{SOURCE_NAME}$")


_PARSED_AT_MOST = 1_048_576
_NAMING_FIELD = re.compile(rb'"(source|external_ref)"\s*:\s*("(?:[^"\\]|\\.){0,200}")')


def _loads(body: bytes) -> Any:
    """The body as JSON; a large one only searched for its source and reference, so a refusal never doubles it."""
    if len(body) > _PARSED_AT_MOST:
        return {m[1].decode(): _loads(m[2]) for m in reversed(list(_NAMING_FIELD.finditer(body)))}
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None


def source_of(submission: Submission) -> str:
    """Whom to answer: the publisher's source, else the routing key's, else the body's; `unknown` when none reads."""
    data = _loads(submission.body)
    named = data.get("source") if isinstance(data, dict) else None
    for candidate in (submission.publisher, submission.routing_key.removeprefix("submit."), named):
        if isinstance(candidate, str) and _SOURCE.match(candidate):
            return candidate
    return "unknown"


def external_ref_of(submission: Submission) -> str | None:
    data = _loads(submission.body)
    ref = data.get("external_ref") if isinstance(data, dict) else None
    return ref if isinstance(ref, str) and ref else None


def _check_content_type(submission: Submission) -> None:
    kind = (submission.content_type or "").split(";")[0].strip().lower()
    if kind not in ("", "application/json"):
        raise CodedError(
            "invalid_content_type",
            f"the message's content_type is `{submission.content_type}`; a submission is JSON:"
            " publish it with content_type application/json (or none)",
        )


def _check_publisher(submission: Submission, command: SubmitDocument) -> SubmitDocument:
    if submission.routing_key != f"submit.{command.source}" or command.source != submission.publisher:
        raise CodedError(
            "source_mismatch",
            f"the message names source `{command.source}` but was published by `{submission.publisher}`"
            f" with routing key `{submission.routing_key}`; a source submits only under its own name"
            f" (`\"source\": \"{submission.publisher}\"`, routing key `submit.{submission.publisher}`)",
        )
    return command


def read_submission(submission: Submission) -> SubmitDocument:
    """The submission's command, or CodedError: missing_user_id, invalid_content_type, invalid_json,
    invalid_message, source_mismatch."""
    if submission.publisher is None:
        raise CodedError(
            "missing_user_id",
            "the message carries no user_id; publish with the AMQP property user_id set to your broker user"
            f" (the user in your AMQP URL, e.g. `paraaf.source.{submission.routing_key.removeprefix('submit.')}`):"
            " RabbitMQ checks it, and Paraaf accepts a submission only from the source it names",
        )
    _check_content_type(submission)
    try:
        data = json.loads(submission.body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CodedError("invalid_json", f"the message is not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise CodedError("invalid_json", "the message must be a JSON object")
    try:
        command = SubmitDocument.model_validate(data)
    except ValidationError as exc:
        raise CodedError("invalid_message", describe_validation_error(exc)) from None
    return _check_publisher(submission, command)


def check_sender(submission: Submission, command: SubmitDocument) -> None:
    """CodedError when a command read from ``submission`` did not come as JSON from the source it names."""
    _check_content_type(submission)
    _check_publisher(submission, command)


def examine_command(submission: Submission, command: SubmitDocument, limits: Limits) -> Examined:
    """Check a command already read from ``submission``: its publisher, then its PDF."""
    try:
        check_sender(submission, command)
        info = inspect_pdf(command.pdf, limits)
    except CodedError as refusal:
        return Examined(submission, refusal=refusal)
    return Examined(submission, command=command, page_count=info.page_count)


def oversized(submission: Submission, limits: Limits) -> Examined | None:
    """A message too long to hold a PDF within the limit, refused before anything reads it."""
    if len(submission.body) <= limits.max_body_bytes:
        return None
    return Examined(submission, refusal=CodedError(
        "too_large",
        f"the message is {describe_size(len(submission.body))}; a submission's PDF may be at most"
        f" {describe_size(limits.max_bytes)} (PARAAF_MAX_PDF_MB), its message at most {describe_size(limits.max_body_bytes)}",
    ))


def examine(submission: Submission, limits: Limits) -> Examined:
    """Read and check a submission; pure, so it can run in a worker process."""
    try:
        command = read_submission(submission)
    except CodedError as refusal:
        return Examined(submission, refusal=refusal)
    return examine_command(submission, command, limits)


def check_due(due_at: datetime | None, now: datetime, link_ttl: timedelta) -> None:
    """CodedError when a submission's due date has passed or falls after its signing link stops working."""
    if due_at is None:
        return
    if due_at <= now:
        raise CodedError(
            "due_passed", f"field `due_at` ({due_at.isoformat()}) is not in the future (it is now {now.isoformat()}); send a later one"
        )
    if due_at > now + link_ttl:
        hours = link_ttl / timedelta(hours=1)
        raise CodedError(
            "due_too_late",
            f"field `due_at` ({due_at.isoformat()}) is after {(now + link_ttl).isoformat()}: a signing link works"
            f" {hours:g} hours (PARAAF_LINK_TTL_HOURS), so nobody could sign by then through it; send an earlier one",
        )


def timely(examined: Examined, now: datetime, link_ttl: timedelta) -> Examined:
    """The examined submission, refused when its due date cannot be kept (see :func:`check_due`)."""
    if examined.command is None:
        return examined
    try:
        check_due(examined.command.due_at, now, link_ttl)
    except CodedError as refusal:
        return replace(examined, command=None, refusal=refusal)
    return examined


def resubmission(stored_digest: str | None, digest: str) -> Literal["new", "same", "duplicate_ref"]:
    """A reference seen before with the same PDF is the same submission; with another PDF it is refused."""
    if stored_digest is None:
        return "new"
    return "same" if stored_digest == digest else "duplicate_ref"
