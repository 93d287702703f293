"""The routing rules (DESIGN.md "Routing rules") as pure functions: no I/O,
no clock; ``now`` and the directory are passed in.

A flow is an ordered list of steps; a step names signers (``person:<id>`` or
``role:<key>``), a mode (``all`` or ``any``) and an action (``sign`` or
``approve``). :func:`plan_step` turns a step into the people to ask;
:func:`step_outcome` says whether a step is done after a signature.
"""

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from shared.events import StepSpec

__all__ = [
    "Assignment",
    "Directory",
    "FlowDefinition",
    "Person",
    "Role",
    "RoutingError",
    "check_steps",
    "parse_signer",
    "plan_step",
    "step_outcome",
]


class RoutingError(ValueError):
    """A flow or a submission names something the directory does not have."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclass(frozen=True)
class Person:
    id: str
    name: str
    email: str
    department: str = ""
    language: str = "nl"


@dataclass(frozen=True)
class Role:
    """A function (algemeen directeur) or mandate (burgemeester): holders in order."""

    key: str
    title: str
    holders: tuple[str, ...]


@dataclass(frozen=True)
class Directory:
    people: Mapping[str, Person] = field(default_factory=dict)
    roles: Mapping[str, Role] = field(default_factory=dict)


@dataclass(frozen=True)
class FlowDefinition:
    key: str
    title: str
    department: str
    group: str
    confidential: bool
    steps: tuple[StepSpec, ...]


@dataclass(frozen=True)
class Assignment:
    """One person to ask in a step, for one of the step's signer entries (``slot``)."""

    slot: str
    person: Person
    title: str
    on_behalf_of: Person | None = None
    reason: str | None = None


def parse_signer(signer: str) -> tuple[Literal["person", "role"], str]:
    """``person:jan`` → ("person", "jan"); a bare id means a person."""
    kind, _, key = signer.partition(":")
    if not key:
        return "person", kind
    if kind not in ("person", "role"):
        raise RoutingError("invalid_signer", f"signer `{signer}` must be `person:<id>` or `role:<key>`")
    return kind, key  # type: ignore[return-value]


def check_steps(steps: Iterable[StepSpec], directory: Directory) -> None:
    """Raise RoutingError naming the first signer the directory does not know."""
    for number, step in enumerate(steps, start=1):
        for signer in step.signers:
            kind, key = parse_signer(signer)
            if kind == "person" and key not in directory.people:
                raise RoutingError("unknown_signer", f"step {number}: person `{key}` is not in the directory")
            if kind == "role":
                role = directory.roles.get(key)
                if role is None:
                    raise RoutingError("unknown_signer", f"step {number}: role `{key}` is not in the directory")
                if not role.holders:
                    raise RoutingError("unknown_signer", f"step {number}: role `{key}` has no holder")


def _resolve(signer: str, directory: Directory) -> tuple[Person, str]:
    kind, key = parse_signer(signer)
    if kind == "person":
        return directory.people[key], ""
    role = directory.roles[key]
    return directory.people[role.holders[0]], role.title


def plan_step(step: StepSpec, directory: Directory, now: datetime) -> list[Assignment]:
    """The people to ask for ``step``; never the same person twice in one step."""
    del now  # absences and substitutes arrive with the directory's availability rules
    assignments: list[Assignment] = []
    asked: set[str] = set()
    for signer in step.signers:
        person, title = _resolve(signer, directory)
        if person.id in asked:
            continue
        asked.add(person.id)
        assignments.append(Assignment(slot=signer, person=person, title=title))
    return assignments


StepState = Literal["waiting", "complete"]


def step_outcome(mode: Literal["all", "any"], slots: Sequence[str], signed_slots: Iterable[str]) -> StepState:
    """``all``: every slot signed; ``any``: one signature completes the step."""
    done = set(signed_slots)
    if mode == "any":
        return "complete" if done else "waiting"
    return "complete" if set(slots) <= done else "waiting"
