"""The routing rules of services/router/domain.py: who is asked, and instead of whom."""

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.router.domain import (
    MAX_DEPTH,
    Absence,
    Directory,
    Group,
    Person,
    Request,
    Role,
    advance,
    check_steps,
    is_absent,
    operator_assignment,
    plan_step,
    planned_signatures,
    reassign,
    resolve,
    shield_of,
    step_outcome,
)
from shared.errors import CodedError
from shared.events import PersonRef, StepSpec

NOW = datetime(2026, 7, 10, 8, 0, tzinfo=UTC)
JULY = Absence("", datetime(2026, 7, 1, tzinfo=UTC), datetime(2026, 8, 1, tzinfo=UTC))


def person(pid: str) -> Person:
    return Person(id=pid, name=pid.title(), email=f"{pid}@stad.be")


def city(absent: tuple[str, ...] = (), substitutes: dict[str, tuple[str, ...]] | None = None) -> Directory:
    people = ["mayor", "alder1", "alder2", "director", "deputy", "clerk"]
    return Directory(
        people={p: person(p) for p in people},
        roles={
            "burgemeester": Role("burgemeester", "burgemeester", ("mayor",)),
            "schepen": Role("schepen", "schepen", ("alder1", "alder2")),
            "algemeen-directeur": Role("algemeen-directeur", "algemeen directeur", ("director",)),
        },
        substitutes=substitutes
        if substitutes is not None
        else {"mayor": ("alder1", "alder2"), "director": ("deputy",), "alder1": ("mayor",)},
        absences={p: (Absence(p, JULY.starts_at, JULY.ends_at),) for p in absent},
    )


def step(*signers: str, mode: str = "all") -> StepSpec:
    return StepSpec(signers=list(signers), mode=mode)


def test_a_present_mayor_signs_in_their_own_right() -> None:
    """With nobody away, the role's holder is asked, for nobody else."""
    [assignment] = plan_step(step("role:burgemeester"), city(), NOW)
    assert (assignment.person.id, assignment.title, assignment.on_behalf_of) == ("mayor", "burgemeester", None)


def test_an_absent_mayor_is_replaced_by_the_first_substitute_on_their_behalf() -> None:
    """In July the mayor's first substitute signs, on behalf of the mayor, because the mayor is absent."""
    [assignment] = plan_step(step("role:burgemeester"), city(absent=("mayor",)), NOW)
    assert assignment.person.id == "alder1"
    assert assignment.on_behalf_of is not None and assignment.on_behalf_of.id == "mayor"
    assert (assignment.title, assignment.reason) == ("burgemeester", "absent")


def test_the_next_substitute_signs_when_the_first_is_away_too() -> None:
    """The substitutes are tried in their order."""
    [assignment] = plan_step(step("role:burgemeester"), city(absent=("mayor", "alder1")), NOW)
    assert assignment.person.id == "alder2"


def test_a_substitutes_own_substitute_comes_after_the_direct_ones() -> None:
    """Direct substitutes first, then theirs (breadth-first)."""
    directory = city(absent=("director", "deputy"), substitutes={"director": ("deputy",), "deputy": ("clerk",)})
    assert resolve("role:algemeen-directeur", directory, NOW).person.id == "clerk"


def test_mutual_substitutes_who_are_both_away_end_unresolved() -> None:
    """A for B and B for A, both away: the walk ends, the original keeps the request, flagged for an operator."""
    directory = city(absent=("mayor", "alder1", "alder2"), substitutes={"mayor": ("alder1",), "alder1": ("mayor",)})
    assignment = resolve("role:burgemeester", directory, NOW)
    assert assignment.person.id == "mayor" and assignment.unresolved


def test_a_second_holder_of_a_role_signs_in_their_own_right() -> None:
    """A role held by two aldermen is signed by the second when the first is away, not on anyone's behalf."""
    [assignment] = plan_step(step("role:schepen"), city(absent=("alder1",)), NOW)
    assert (assignment.person.id, assignment.on_behalf_of) == ("alder2", None)


def test_nobody_is_asked_twice_in_one_step() -> None:
    """A substitute who must sign the same step in their own right is skipped for the next one."""
    directory = city(absent=("mayor",), substitutes={"mayor": ("alder1", "clerk")})
    assignments = plan_step(step("role:burgemeester", "person:alder1"), directory, NOW)
    assert [(a.person.id, a.on_behalf_of.id if a.on_behalf_of else None) for a in assignments] == [
        ("clerk", "mayor"),
        ("alder1", None),
    ]


def test_the_same_person_twice_in_a_step_is_asked_once() -> None:
    """A step naming the mayor and the burgemeester role asks the mayor once."""
    assert len(plan_step(step("person:mayor", "role:burgemeester"), city(), NOW)) == 1


def test_an_absence_is_half_open() -> None:
    """Away from the first instant, back at the second."""
    directory = city(absent=("mayor",))
    assert is_absent("mayor", directory, JULY.starts_at)
    assert not is_absent("mayor", directory, JULY.ends_at)
    assert is_absent("mayor", directory, JULY.ends_at - timedelta(microseconds=1))


def test_reassigned_work_stays_on_behalf_of_the_person_it_was_for() -> None:
    """When the mayor's substitute goes away, the next substitute takes over, still for the mayor."""
    directory = city(absent=("mayor", "alder1"))
    assignment = reassign("alder1", "mayor", "burgemeester", directory, NOW, taken=set())
    assert assignment is not None
    assert (assignment.person.id, assignment.on_behalf_of.id) == ("alder2", "mayor")


def test_reassigned_work_returns_to_the_person_it_was_for_when_they_are_back() -> None:
    """A substitute going away hands the request back to the mayor who is present again."""
    assignment = reassign("alder1", "mayor", "burgemeester", city(absent=("alder1",)), NOW, taken=set())
    assert assignment is not None and (assignment.person.id, assignment.on_behalf_of) == ("mayor", None)


def test_reassignment_with_nobody_available_gives_none() -> None:
    """When every substitute is away, nothing moves (the caller alerts an operator)."""
    directory = city(absent=("director", "deputy"))
    assert reassign("director", None, "algemeen directeur", directory, NOW, taken=set()) is None


def welfare_city(absent: tuple[str, ...]) -> Directory:
    """The OCMW chair's substitutes: first an alderman outside the shielded social-welfare group, then one inside."""
    people = {
        "chair": Person("chair", "Chair", "chair@stad.be", department="OCMW"),
        "alder1": Person("alder1", "Alder1", "alder1@stad.be", department="Bestuur"),
        "social": Person("social", "Social", "social@stad.be", department="OCMW"),
    }
    return Directory(
        people=people,
        roles={"voorzitter-bcsd": Role("voorzitter-bcsd", "voorzitter BCSD", ("chair",))},
        substitutes={"chair": ("alder1", "social")},
        absences={p: (Absence(p, JULY.starts_at, JULY.ends_at),) for p in absent},
        groups={"sociaal": Group("sociaal", ("OCMW",), shielded=True), "bestuur": Group("bestuur", ("Bestuur",))},
    )


def test_a_substitute_outside_a_shielded_group_is_skipped_and_the_reason_says_so() -> None:
    """For a social-welfare document the absent chair's first substitute, an alderman outside the shielded group, is
    not asked; the next one inside it is, and the reason names who was skipped and why."""
    directory = welfare_city(absent=("chair",))
    [assignment] = plan_step(step("role:voorzitter-bcsd"), directory, NOW, shield=shield_of(directory, "sociaal"))
    assert assignment.person.id == "social"
    assert assignment.reason == "absent; not asked, outside shielded group sociaal: alder1"
    [unshielded] = plan_step(step("role:voorzitter-bcsd"), directory, NOW, shield=shield_of(directory, "bestuur"))
    assert unshielded.person.id == "alder1"


def test_with_only_outsiders_free_a_shielded_document_stays_with_its_signer_and_an_operator_is_told() -> None:
    """When the only free substitute is outside the shielded group, the request is not moved (unresolved on
    planning, None on reassignment) rather than shown to an outsider."""
    directory = welfare_city(absent=("chair", "social"))
    shield = shield_of(directory, "sociaal")
    [assignment] = plan_step(step("role:voorzitter-bcsd"), directory, NOW, shield=shield)
    assert (assignment.person.id, assignment.unresolved) == ("chair", True)
    assert "outside shielded group sociaal: alder1" in (assignment.reason or "")
    assert reassign("chair", None, "voorzitter BCSD", directory, NOW, taken=set(), shield=shield) is None


def _waiting(person_id: str, *, title: str = "", on_behalf_of: str | None = None, status: str = "pending") -> Request:
    ref = lambda pid, t="": PersonRef(id=pid, name=pid.title(), title=t)  # noqa: E731
    return Request(uuid4(), uuid4(), "default", 2, "role:voorzitter-bcsd", ref(person_id, title), "sign",
                   ref(on_behalf_of, title) if on_behalf_of else None, status=status)  # type: ignore[arg-type]


def test_an_operator_moves_a_waiting_request_to_someone_who_signs_for_whom_it_stood() -> None:
    """The chair's request goes to the social worker, on the chair's behalf, with the operator and reason said; a
    request already held for the chair by a substitute stays on the chair's behalf."""
    directory = welfare_city(absent=("chair",))
    moved = operator_assignment(_waiting("chair", title="voorzitter BCSD"), "social", directory, None, by="operator:iris", why="ziek")
    assert (moved.person.id, moved.on_behalf_of.id if moved.on_behalf_of else None) == ("social", "chair")
    assert (moved.title, moved.reason, moved.entry) == ("voorzitter BCSD", "reassigned by operator:iris: ziek", "role:voorzitter-bcsd")
    again = operator_assignment(_waiting("alder1", on_behalf_of="chair"), "social", directory, None, by="operator:iris", why="x")
    assert again.on_behalf_of is not None and again.on_behalf_of.id == "chair"
    back = operator_assignment(_waiting("social", on_behalf_of="chair"), "chair", directory, None, by="operator:iris", why="terug")
    assert back.on_behalf_of is None, "back with the person it was for: in her own right"


@pytest.mark.parametrize(
    ("request_", "target", "code"),
    [
        (_waiting("chair"), "nobody", "unknown_person"),
        (_waiting("chair"), "chair", "same_person"),
        (_waiting("chair"), "alder1", "outside_shield"),
        (_waiting("chair", status="signed"), "social", "ended"),
    ],
)
def test_an_operator_cannot_move_a_request_to_nobody_to_herself_outside_the_shield_or_once_done(
    request_: Request, target: str, code: str
) -> None:
    directory = welfare_city(absent=())
    with pytest.raises(CodedError) as refused:
        operator_assignment(request_, target, directory, shield_of(directory, "sociaal"), by="operator:iris", why="x")
    assert refused.value.code == code


def test_unknown_signers_are_refused_with_their_step() -> None:
    """A flow naming somebody the directory lacks is refused, saying which step and whom."""
    with pytest.raises(CodedError, match="step 2: role `schepen-x` is not in the directory"):
        check_steps([step("person:mayor"), step("role:schepen-x")], city())


@pytest.mark.parametrize(
    ("mode", "entries", "signed", "state"),
    [
        ("all", ["a", "b"], ["a"], "waiting"),
        ("all", ["a", "b"], ["b", "a"], "complete"),
        ("any", ["a", "b"], [], "waiting"),
        ("any", ["a", "b"], ["b"], "complete"),
    ],
)
def test_a_step_completes_by_its_mode(mode: str, entries: list[str], signed: list[str], state: str) -> None:
    """`all` waits for every entry, `any` completes at the first signature."""
    assert step_outcome(mode, entries, signed) == state  # type: ignore[arg-type]


def test_the_planned_signature_count_leaves_out_approvals_and_counts_one_per_any_step() -> None:
    """An approval adds no signature, an `any` step one, an `all` step one per distinct signer."""
    steps = [
        StepSpec(action="approve", signers=["person:clerk"]),
        StepSpec(mode="any", signers=["role:schepen", "person:deputy"]),
        StepSpec(mode="all", signers=["role:algemeen-directeur", "role:burgemeester", "role:burgemeester"]),
    ]
    assert planned_signatures(steps) == 3


# Property-based: random directories of up to 12 people, random substitutes (cycles included), random absences.

IDS = [f"p{i}" for i in range(12)]


@st.composite
def directories(draw: st.DrawFn) -> Directory:
    size = draw(st.integers(min_value=2, max_value=len(IDS)))
    ids = IDS[:size]
    substitutes = {
        pid: tuple(draw(st.lists(st.sampled_from([o for o in ids if o != pid]), unique=True, max_size=4)))
        for pid in ids
        if draw(st.booleans())
    }
    absent = draw(st.lists(st.sampled_from(ids), unique=True))
    roles = {
        f"r{i}": Role(f"r{i}", f"role {i}", tuple(draw(st.lists(st.sampled_from(ids), unique=True, min_size=1, max_size=3))))
        for i in range(draw(st.integers(min_value=0, max_value=3)))
    }
    return Directory(
        people={pid: person(pid) for pid in ids},
        roles=roles,
        substitutes=substitutes,
        absences={pid: (Absence(pid, JULY.starts_at, JULY.ends_at),) for pid in absent},
    )


@st.composite
def directory_and_step(draw: st.DrawFn) -> tuple[Directory, StepSpec]:
    directory = draw(directories())
    names = [f"person:{p}" for p in directory.people] + [f"role:{r}" for r in directory.roles]
    signers = draw(st.lists(st.sampled_from(names), min_size=1, max_size=5))
    return directory, step(*signers)


def _row(directory: Directory, signer: str) -> set[str]:
    """Everyone the rules may ask for ``signer``: its holders and their substitutes down to MAX_DEPTH levels."""
    kind, _, key = signer.partition(":")
    level = set(directory.roles[key].holders) if kind == "role" else {key}
    row = set(level)
    for _ in range(MAX_DEPTH):
        level = {s for p in level for s in directory.substitutes.get(p, ()) if s not in row}
        row |= level
    return row


@given(directory_and_step())
def test_property_nobody_is_asked_twice_in_a_step(case: tuple[Directory, StepSpec]) -> None:
    """Whatever the directory, a step never asks one person twice."""
    directory, spec = case
    asked = [a.person.id for a in plan_step(spec, directory, NOW)]
    assert len(asked) == len(set(asked))


@given(directory_and_step())
def test_property_an_absent_person_is_asked_only_when_nobody_in_the_row_is_free(case: tuple[Directory, StepSpec]) -> None:
    """A request goes to an absent person only if everyone else in that signer's row is absent or already asked."""
    directory, spec = case
    assignments = plan_step(spec, directory, NOW)
    asked = {a.person.id for a in assignments}
    for assignment in assignments:
        if is_absent(assignment.person.id, directory, NOW):
            assert assignment.unresolved
            free = {p for p in _row(directory, assignment.entry) if not is_absent(p, directory, NOW)}
            assert free <= asked, f"{assignment.entry}: {free - asked} were free"


@given(directory_and_step())
def test_property_every_present_signer_entry_gets_somebody(case: tuple[Directory, StepSpec]) -> None:
    """Each signer entry is either asked for, or covered by a person already asked in the step."""
    directory, spec = case
    assignments = plan_step(spec, directory, NOW)
    entries = {a.entry for a in assignments}
    asked = {a.person.id for a in assignments}
    for signer in spec.signers:
        assert signer in entries or _row(directory, signer) & asked


@given(directories(), st.sampled_from(IDS))
def test_property_substitute_cycles_terminate(directory: Directory, start: str) -> None:
    """Resolving anyone in a directory full of substitute cycles, with everyone away, ends with an answer."""
    if start not in directory.people:
        return
    everyone_away = Directory(
        people=directory.people,
        roles=directory.roles,
        substitutes=directory.substitutes,
        absences={p: (Absence(p, JULY.starts_at, JULY.ends_at),) for p in directory.people},
    )
    assert resolve(f"person:{start}", everyone_away, NOW).unresolved


@st.composite
def flows_and_signing_orders(draw: st.DrawFn) -> tuple[list[StepSpec], list[int]]:
    steps = [
        StepSpec(signers=[f"person:s{n}-{i}" for i in range(draw(st.integers(1, 3)))], mode=draw(st.sampled_from(["all", "any"])))
        for n in range(draw(st.integers(1, 5)))
    ]
    return steps, draw(st.lists(st.integers(min_value=0, max_value=99), min_size=1, max_size=60))


@given(flows_and_signing_orders())
def test_property_steps_run_strictly_in_order(case: tuple[list[StepSpec], list[int]]) -> None:
    """Whatever order people sign in (duplicates and late signatures included), step k+1 opens only after step k is complete, and the document completes once, after the last step."""
    steps, choices = case
    current, opened, completed = 1, [1], 0
    signed: dict[int, set[str]] = {1: set()}
    late: list[tuple[int, str]] = []
    for choice in choices:
        if completed:
            break
        open_entries = [s for s in steps[current - 1].signers if s not in signed[current]]
        # Only requests of the current step exist; a "late" pick re-delivers an older signature.
        if choice % 4 == 0 and late:
            step_number, entry = late[choice % len(late)]
            assert step_number < current or entry in signed[current]
            continue
        entry = open_entries[choice % len(open_entries)] if open_entries else steps[current - 1].signers[0]
        signed[current].add(entry)
        late.append((current, entry))
        progress = advance(current, len(steps), steps[current - 1].mode, steps[current - 1].signers, signed[current])
        if progress != "wait":
            assert step_outcome(steps[current - 1].mode, steps[current - 1].signers, signed[current]) == "complete"
        if progress == "next":
            current += 1
            opened.append(current)
            signed[current] = set()
        elif progress == "complete":
            completed += 1
    assert opened == list(range(1, len(opened) + 1))
    assert completed <= 1
    if completed:
        assert opened[-1] == len(steps)
