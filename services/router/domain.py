"""The routing rules (DESIGN.md "Routing rules") as pure functions: no I/O,
no clock; ``now`` and the directory are passed in.

A flow is an ordered list of steps; a step names signers (``person:<id>`` or
``role:<key>``), a mode (``all`` or ``any``) and an action (``sign`` or
``approve``).

Who signs for a signer entry: a role resolves to its first *available*
holder (holders are the incumbents, in order). When nobody in the entry is
available, the substitutes are walked breadth-first — the original's own
substitutes in their order first, then theirs — skipping anyone already seen
(cycles end) and going at most :data:`MAX_DEPTH` levels deep. The first
available person signs *on behalf of* the original. When nobody is
available, the original keeps the request (they can still sign from leave)
and the assignment is marked unresolved, for an operator alert. Nobody is
asked twice in one step.
"""

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Literal
from uuid import UUID

from shared.errors import CodedError
from shared.events import PersonRef, SignatureRecord, StepSpec

__all__ = [
    "operator_assignment",
    "MAX_DEPTH",
    "Absence",
    "Assignment",
    "Change",
    "Directory",
    "FlowDefinition",
    "Group",
    "ImportRefused",
    "Instance",
    "Person",
    "Problem",
    "Request",
    "Role",
    "Shield",
    "SignatureEffect",
    "advance",
    "check_steps",
    "check_withdrawal",
    "directory_changes",
    "is_absent",
    "parse_signer",
    "plan_step",
    "planned_signatures",
    "reassign",
    "resolve",
    "shield_of",
    "signature_effect",
    "step_outcome",
    "still_named",
    "with_signature",
]

MAX_DEPTH = 5


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an imported file, and where: "sheet `people`, row 4: ..."."""

    where: str
    reason: str

    def __str__(self) -> str:
        return f"{self.where}: {self.reason}"


class ImportRefused(ValueError):
    """A file has bad rows, or its import would remove someone still needed; nothing was imported."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = list(problems)


@dataclass(frozen=True)
class Person:
    id: str
    name: str
    email: str
    department: str = ""
    language: str = "nl"
    manager: str = ""  # the person she reports to, who may register her absences
    mails: str = "individual"  # individual | digest: a mail per request, or a daily digest above PARAAF_DIGEST_THRESHOLD


@dataclass(frozen=True)
class Role:
    """A function (algemeen directeur) or mandate (burgemeester): holders in order."""

    key: str
    title: str
    holders: tuple[str, ...]


AbsencePhase = Literal["ahead", "running", "over"]


@dataclass(frozen=True)
class Absence:
    """``person_id`` is away from ``starts_at`` (inclusive) until ``ends_at`` (exclusive)."""

    person_id: str
    starts_at: datetime
    ends_at: datetime

    def phase(self, now: datetime) -> AbsencePhase:
        """The one definition of when an absence holds."""
        if now < self.starts_at:
            return "ahead"
        return "running" if now < self.ends_at else "over"

    def covers(self, now: datetime) -> bool:
        return self.phase(now) == "running"


@dataclass(frozen=True)
class Group:
    """A visibility group: the departments whose members see its documents."""

    key: str
    departments: tuple[str, ...]
    shielded: bool = False


@dataclass(frozen=True)
class Directory:
    people: Mapping[str, Person] = field(default_factory=dict)
    roles: Mapping[str, Role] = field(default_factory=dict)
    substitutes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    absences: Mapping[str, tuple[Absence, ...]] = field(default_factory=dict)
    groups: Mapping[str, Group] = field(default_factory=dict)


@dataclass(frozen=True)
class FlowDefinition:
    key: str
    title: str
    department: str
    group: str
    confidential: bool
    steps: tuple[StepSpec, ...]


@dataclass(frozen=True)
class Shield:
    """A document of a shielded group (discipline, OCMW): nobody outside the group may stand in for its signers."""

    group: str
    members: frozenset[str]

    def admits(self, person_id: str) -> bool:
        return person_id in self.members


def shield_of(directory: Directory, group_key: str | None) -> Shield | None:
    """The shield of a document whose flow's group is ``group_key``; None unless that group is shielded."""
    group = directory.groups.get(group_key) if group_key else None
    if group is None or not group.shielded:
        return None
    return Shield(group.key, frozenset(p.id for p in directory.people.values() if p.department in group.departments))


def _first_admitted(
    row: Iterable[str], directory: Directory, now: datetime, taken: Collection[str], shield: Shield | None
) -> tuple[str | None, list[str]]:
    """The first available person of ``row`` the shield admits, and the available ones it kept out, in order."""
    kept_out: list[str] = []
    for candidate in row:
        if not _available(candidate, directory, now, taken):
            continue
        if shield is None or shield.admits(candidate):
            return candidate, kept_out
        kept_out.append(candidate)
    return None, kept_out


def _saying_who_was_kept_out(reason: str, kept_out: Sequence[str], shield: Shield | None) -> str:
    if not kept_out or shield is None:
        return reason
    return f"{reason}; not asked, outside shielded group {shield.group}: {', '.join(kept_out)}"


@dataclass(frozen=True)
class Assignment:
    """Who to ask for one signer entry (``entry``) of a step, and why."""

    entry: str
    person: Person
    title: str  # the function the entry names ("burgemeester"), "" for a person entry
    on_behalf_of: Person | None = None
    reason: str | None = None
    unresolved: bool = False  # nobody available: the original keeps it; an operator is told


def parse_signer(signer: str) -> tuple[Literal["person", "role"], str]:
    """``person:jan`` → ("person", "jan"); a bare id means a person."""
    kind, _, key = signer.partition(":")
    if not key:
        return "person", kind
    if kind not in ("person", "role"):
        raise CodedError("invalid_signer", f"signer `{signer}` must be `person:<id>` or `role:<key>`")
    return kind, key  # type: ignore[return-value]


def check_steps(steps: Iterable[StepSpec], directory: Directory) -> None:
    """Raise CodedError naming the first signer the directory does not know."""
    for number, step in enumerate(steps, start=1):
        for signer in step.signers:
            kind, key = parse_signer(signer)
            if kind == "person" and key not in directory.people:
                raise CodedError("unknown_signer", f"step {number}: person `{key}` is not in the directory")
            if kind == "role":
                role = directory.roles.get(key)
                if role is None:
                    raise CodedError("unknown_signer", f"step {number}: role `{key}` is not in the directory")
                if not any(h in directory.people for h in role.holders):
                    raise CodedError("unknown_signer", f"step {number}: role `{key}` has no holder")


def is_absent(person_id: str, directory: Directory, now: datetime) -> bool:
    return any(a.covers(now) for a in directory.absences.get(person_id, ()))


def _available(person_id: str, directory: Directory, now: datetime, taken: Collection[str]) -> bool:
    return person_id in directory.people and person_id not in taken and not is_absent(person_id, directory, now)


def _substitute_row(originals: Sequence[str], directory: Directory) -> list[str]:
    """Everyone who may stand in for ``originals``, breadth-first, each once, at most MAX_DEPTH levels."""
    seen = set(originals)
    row: list[str] = []
    level = list(originals)
    for _ in range(MAX_DEPTH):
        next_level = []
        for person_id in level:
            for substitute in directory.substitutes.get(person_id, ()):
                if substitute not in seen:
                    seen.add(substitute)
                    next_level.append(substitute)
        row += next_level
        level = next_level
    return row


def _reason(person_id: str, directory: Directory, now: datetime) -> str:
    return "absent" if is_absent(person_id, directory, now) else "already asked in this step"


def _holders(signer: str, directory: Directory) -> tuple[tuple[str, ...], str]:
    kind, key = parse_signer(signer)
    if kind == "person":
        return (key,), ""
    role = directory.roles[key]
    return tuple(h for h in role.holders if h in directory.people), role.title


def _in_own_right(signer: str, directory: Directory, now: datetime, taken: Collection[str]) -> Assignment | None:
    holders, title = _holders(signer, directory)
    for holder in holders:
        if _available(holder, directory, now, taken):
            return Assignment(entry=signer, person=directory.people[holder], title=title)
    return None


def _stand_in(
    signer: str, directory: Directory, now: datetime, taken: Collection[str], shield: Shield | None = None
) -> Assignment:
    holders, title = _holders(signer, directory)
    original = directory.people[holders[0]]
    chosen, kept_out = _first_admitted(_substitute_row(holders, directory), directory, now, taken, shield)
    reason = _saying_who_was_kept_out(_reason(original.id, directory, now), kept_out, shield)
    if chosen is not None:
        return Assignment(entry=signer, person=directory.people[chosen], title=title, on_behalf_of=original, reason=reason)
    return Assignment(
        entry=signer, person=original, title=title, reason=f"{reason}; no substitute is available", unresolved=True
    )


def resolve(
    signer: str, directory: Directory, now: datetime, taken: Collection[str] = (), *, shield: Shield | None = None
) -> Assignment:
    """The person to ask for ``signer`` at ``now``; ``taken`` are people already asked in this step."""
    return _in_own_right(signer, directory, now, taken) or _stand_in(signer, directory, now, taken, shield)


def plan_step(step: StepSpec, directory: Directory, now: datetime, *, shield: Shield | None = None) -> list[Assignment]:
    """Who to ask for ``step``: one person per signer entry, never the same person twice.

    Entries whose own holder is available are settled first, so a substitute
    is never picked from among people who must sign in their own right.
    """
    chosen: dict[int, Assignment] = {}
    for index, signer in enumerate(step.signers):
        own = _in_own_right(signer, directory, now, {a.person.id for a in chosen.values()})
        if own is not None:
            chosen[index] = own
    for index, signer in enumerate(step.signers):
        if index in chosen:
            continue
        taken = {a.person.id for a in chosen.values()}
        holders, _ = _holders(signer, directory)
        if any(h in taken and not is_absent(h, directory, now) for h in holders):
            continue  # a present holder already signs this step for another entry: this one is covered
        stand_in = _stand_in(signer, directory, now, taken, shield)
        if stand_in.person.id not in taken:  # an unresolved entry whose original already signs here is covered
            chosen[index] = stand_in
    return [chosen[index] for index in sorted(chosen)]


def reassign(
    original: str,
    on_behalf_of: str | None,
    entry_title: str,
    directory: Directory,
    now: datetime,
    taken: Collection[str],
    *,
    shield: Shield | None = None,
) -> Assignment | None:
    """A new assignee for a pending request of ``original``, who just became absent.

    ``on_behalf_of`` is whom the request already stood in for: a substitute's
    substitute still signs for the mayor, and when the mayor is back the
    request returns to the mayor. None when nobody in the row is available.
    """
    represented = directory.people.get(on_behalf_of or original)
    if represented is None:
        return None
    excluded = {*taken, original}
    if represented.id != original and _available(represented.id, directory, now, excluded):
        return Assignment(entry="", person=represented, title=entry_title)
    row = _substitute_row((represented.id, original), directory)
    chosen, kept_out = _first_admitted(row, directory, now, excluded, shield)
    if chosen is None:
        return None
    reason = _saying_who_was_kept_out("absent", kept_out, shield)
    return Assignment(entry="", person=directory.people[chosen], title=entry_title, on_behalf_of=represented, reason=reason)


StepState = Literal["waiting", "complete"]
Progress = Literal["wait", "next", "complete"]


def step_outcome(mode: Literal["all", "any"], entries: Sequence[str], signed_entries: Iterable[str]) -> StepState:
    """``all``: every entry signed; ``any``: one signature completes the step."""
    done = set(signed_entries)
    if mode == "any":
        return "complete" if done else "waiting"
    return "complete" if set(entries) <= done else "waiting"


def advance(
    step_number: int, step_count: int, mode: Literal["all", "any"], entries: Sequence[str], signed_entries: Iterable[str]
) -> Progress:
    """After a signature in step ``step_number``: wait, start the next step, or complete the document.

    The only way to a later step: the current one is complete by its mode.
    """
    if step_outcome(mode, entries, signed_entries) == "waiting":
        return "wait"
    return "next" if step_number < step_count else "complete"


def planned_signatures(steps: Sequence[StepSpec]) -> int:
    """How many PAdES signatures a finished document will hold: every signer of an
    ``all`` signing step, one per ``any`` signing step; approvals sign nothing."""
    return sum(
        (1 if step.mode == "any" else len(dict.fromkeys(step.signers))) for step in steps if step.action == "sign"
    )


# A document under way and its requests, as the rules see them.

InstanceStatus = Literal["active", "completed", "declined", "withdrawn"]
RequestStatus = Literal["pending", "signed", "declined", "reassigned", "cancelled"]


@dataclass(frozen=True)
class Instance:
    """A document following its flow: the steps it runs, where it is, and what was signed."""

    document_id: UUID
    org: str
    title: str
    filename: str
    submitted_by: PersonRef
    confidential: bool
    steps: tuple[StepSpec, ...]
    pdf_sha256: str
    flow_key: str | None = None
    department: str | None = None
    group: str | None = None
    current_step: int = 0
    status: InstanceStatus = "active"
    revision: int = 0
    signatures: tuple[SignatureRecord, ...] = ()
    due_at: datetime | None = None  # when its submission asks it to be signed by; every request carries it

    @property
    def step_count(self) -> int:
        return len(self.steps)


@dataclass(frozen=True)
class Request:
    """One person asked to sign (or approve) for one signer entry (``entry``) of one step."""

    request_id: UUID
    document_id: UUID
    org: str
    step: int
    entry: str
    person: PersonRef
    action: str
    on_behalf_of: PersonRef | None = None
    reason: str | None = None
    status: RequestStatus = "pending"
    replaces: UUID | None = None


@dataclass(frozen=True)
class SignatureEffect:
    """What a signature does to its document: nothing more than being recorded (``counts`` False: late),
    or it settles its request, cancels the requests it makes needless, and waits, opens the next step or completes."""

    counts: bool
    raced: tuple[UUID, ...] = ()  # a substitute's request for the entry the signer signed just before the move
    needless: tuple[UUID, ...] = ()  # the step's other open requests, once the step is complete
    then: Progress = "wait"


def signature_effect(instance: Instance, request: Request, step_requests: Sequence[Request]) -> SignatureEffect:
    """A signature made through ``request``'s link, given the other requests of its step."""
    raced: tuple[UUID, ...] = ()
    if instance.status == "active" and request.status == "reassigned":
        # Signed through the old link before the move reached the signer: it counts.
        raced = tuple(r.request_id for r in step_requests if r.entry == request.entry and r.status == "pending")
    elif request.status != "pending" or instance.status != "active":
        return SignatureEffect(counts=False)
    after = [
        replace(r, status="signed" if r.request_id == request.request_id else "cancelled" if r.request_id in raced else r.status)
        for r in step_requests
    ]
    live = [r for r in after if r.status != "reassigned"]
    step = instance.steps[request.step - 1]
    progress = advance(request.step, instance.step_count, step.mode, [r.entry for r in live], [r.entry for r in live if r.status == "signed"])
    needless = () if progress == "wait" else tuple(r.request_id for r in live if r.status == "pending")
    return SignatureEffect(counts=True, raced=raced, needless=needless, then=progress)


def with_signature(
    instance: Instance, signature: SignatureRecord, pdf_sha256: str, revision: int, *, status: InstanceStatus | None = None
) -> Instance:
    """The document once ``signature`` is recorded: the signature appended, the PDF moved only forward (signatures may
    be reported out of order), and with ``status`` the document moved to it."""
    newer = revision > instance.revision
    return replace(
        instance,
        signatures=(*instance.signatures, signature),
        pdf_sha256=pdf_sha256 if newer else instance.pdf_sha256,
        revision=max(revision, instance.revision),
        status=status or instance.status,
    )


def check_withdrawal(instance: Instance | None, org: str, by: str) -> None:
    """The submitter (their person id), an operator (``operator:<name>``) of the document's org, or the source that
    submitted it (``source:<name>``: intake checked it is that source's document) may stop it while it runs."""
    if instance is None or instance.org != org:
        raise CodedError("unknown_document", "there is no such document")
    if by != instance.submitted_by.id and not by.startswith(("operator:", "source:")):
        raise CodedError("not_allowed", f"only the submitter ({instance.submitted_by.id}) or an operator can withdraw")
    if instance.status != "active":
        raise CodedError("ended", f"the document is already {instance.status}")


def _removed(signer: str, directory: Directory) -> bool:
    kind, key = parse_signer(signer)
    return (kind == "person" and key not in directory.people) or (kind == "role" and key not in directory.roles)


def still_named(
    users: Iterable[tuple[str, Sequence[StepSpec]]], waiting: Iterable[str], directory: Directory
) -> list[Problem]:
    """Whom a new ``directory`` would remove while a flow, a running ad-hoc flow (``users``: where, steps)
    or an open request (``waiting``: person ids) still names them: such an import is refused."""
    problems = [
        Problem(where, f"names {signer}, which this import removes")
        for where, steps in users
        for step in steps
        for signer in step.signers
        if _removed(signer, directory)
    ]
    return problems + [
        Problem(f"person `{person_id}`", "has requests waiting and cannot be removed yet")
        for person_id in sorted(set(waiting))
        if person_id not in directory.people
    ]


@dataclass(frozen=True)
class Change:
    added: int
    changed: int
    removed: int

    @property
    def none(self) -> bool:
        return self == Change(0, 0, 0)


def _diff(old: Mapping[str, object], new: Mapping[str, object]) -> Change:
    return Change(
        added=len(new.keys() - old.keys()),
        changed=sum(1 for k in new.keys() & old.keys() if new[k] != old[k]),
        removed=len(old.keys() - new.keys()),
    )


def directory_changes(before: Directory, after: Directory) -> dict[str, Change]:
    """What importing ``after`` over ``before`` changes, per sheet (absences: the imported ones)."""
    old = {(a.person_id, a.starts_at, a.ends_at) for items in before.absences.values() for a in items}
    new = {(a.person_id, a.starts_at, a.ends_at) for items in after.absences.values() for a in items}
    return {
        "people": _diff(before.people, after.people),
        "roles": _diff(before.roles, after.roles),
        "substitutes": _diff(before.substitutes, after.substitutes),
        "absences": Change(added=len(new - old), changed=0, removed=len(old - new)),
        "groups": _diff(before.groups, after.groups),
    }


def operator_assignment(request: Request, target: str, directory: Directory, shield: Shield | None, *, by: str, why: str) -> Assignment:
    """Who takes over a pending request when an operator moves it (an incident: nobody in the row was available, or
    the person cannot sign): ``target``, for whom the request already stood (the original signer, or whom she
    stood in for). CodedError when ``target`` cannot take it."""
    if request.status != "pending":
        raise CodedError("ended", f"request {request.request_id} is already {request.status}")
    person = directory.people.get(target)
    if person is None:
        raise CodedError("unknown_person", f"`{target}` is not in the directory")
    if target == request.person.id:
        raise CodedError("same_person", f"the request is already {target}'s")
    if shield is not None and not shield.admits(target):
        raise CodedError("outside_shield", f"`{target}` is outside shielded group {shield.group}, whose documents this is one of")
    represented = directory.people.get((request.on_behalf_of or request.person).id)
    stands_in = represented if represented is not None and represented.id != target else None
    return Assignment(request.entry, person, request.person.title, stands_in, f"reassigned by {by}: {why}")
