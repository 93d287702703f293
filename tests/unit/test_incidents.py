"""Which incidents are open, and in what order: dismissed ones leave, each is listed once, the oldest first."""

from datetime import UTC, datetime
from uuid import uuid4

from services.ops.incidents import (
    Incident,
    _mail_fix,
    _stuck_incident,
    dead_letter_incidents,
    incident_document,
    open_incidents,
    why_not_dismissed,
)

T0 = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


def _incident(id_: str, hour: int | None) -> Incident:
    return Incident(id_, id_.split(":")[0], None, "cause", T0.replace(hour=hour) if hour is not None else None, "fix")


def test_open_incidents_leave_out_the_dismissed_and_list_the_oldest_first_each_once() -> None:
    found = [_incident("stuck:b", 11), _incident("routing:a", 10), _incident("dead_letters:x.dlq", None), _incident("stuck:b", 11),
             _incident("mail:c", 9)]
    assert [i.id for i in open_incidents(found, {"mail:c"})] == ["routing:a", "stuck:b", "dead_letters:x.dlq"]


def test_only_queues_that_hold_messages_are_incidents_and_their_fix_names_the_queue() -> None:
    held = dead_letter_incidents([("router.events.dlq", 2), ("signer.events.dlq", 0), ("unrouted", None), ("unrouted", 1)])
    assert [(i.id, i.cause) for i in held] == [
        ("dead_letters:router.events.dlq", "2 message(s) in router.events.dlq"), ("dead_letters:unrouted", "1 message(s) in unrouted"),
    ]
    assert held[0].fix.startswith("paraaf dlq show router.events ID")


def test_an_incident_without_a_document_is_audited_under_a_stable_id_of_its_own() -> None:
    document = uuid4()
    assert incident_document("stuck:x", document) == document
    assert incident_document("dead_letters:unrouted", None) == incident_document("dead_letters:unrouted", None)
    assert incident_document("dead_letters:unrouted", None) != incident_document("dead_letters:router.events.dlq", None)


def test_a_failed_signing_mail_points_to_resend_and_to_dropping_its_kept_copy() -> None:
    """The fix of a failed mail about a request: mend the address, `paraaf document resend REQUEST`, drop its copy;
    of one about no request (a routing alert), no resend."""
    request, document = uuid4(), uuid4()
    fix = _mail_fix(request, document, "m-1")
    assert f"paraaf document resend {request} --reason" in fix and "paraaf dlq drop notifier.events m-1" in fix
    assert "resend" not in _mail_fix(None, document, None)


def test_a_stuck_document_names_its_first_waiting_request_in_its_fix() -> None:
    """The reassign command of a stuck document names the request that waits (the first of several), ready to run."""
    document, first, second = uuid4(), uuid4(), uuid4()
    incident = _stuck_incident(document, ("Hilde Hendrickx",), T0, 5, [first, second])
    assert incident.request_id == first and f"paraaf document reassign {first} --to PERSON" in incident.fix
    assert _stuck_incident(document, (), T0, 5, []).request_id is None


def test_dead_letters_are_replayed_or_dropped_never_dismissed_and_everything_else_may_be() -> None:
    """Dismissing a queue's incident would hide its later dead letters for good: refused, naming the commands."""
    [queue] = dead_letter_incidents([("router.events.dlq", 1)])
    refusal = why_not_dismissed(queue)
    assert refusal is not None and "paraaf dlq show router.events" in refusal and "replayed or dropped" in refusal
    assert why_not_dismissed(_incident("stuck:b", 11)) is None and why_not_dismissed(_incident("mail:c", 9)) is None
