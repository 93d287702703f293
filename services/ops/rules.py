"""The operator's read-only views as pure functions: how long a document has
waited in working days, what ``--older-than 3d`` means, which titles an
operator may not see, and one line of text per event — so ``paraaf
documents``, ``trail`` and ``tail`` agree and can be tested without I/O.

Titles never appear in an event's summary: events of a confidential or
shielded document carry its title (and a mail's subject holds it too), and
an operator sees such a document's trail, never its title
(shared/visibility.py, Access.TRAIL).
"""

import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

__all__ = [
    "HIDDEN_TITLE",
    "STATUSES",
    "is_stuck",
    "local_time",
    "parse_age",
    "shown_title",
    "summary",
    "topic_matches",
    "working_days_between",
]

HIDDEN_TITLE = "(confidential)"
STATUSES = ("waiting", "completed", "declined", "withdrawn", "stuck")
_AGE = re.compile(r"^\s*(\d+)\s*([hdw])\s*$")
_UNITS = {"h": timedelta(hours=1), "d": timedelta(days=1), "w": timedelta(weeks=1)}


def parse_age(text: str) -> timedelta:
    """``12h``, ``3d`` or ``2w`` as a duration; anything else is refused with what is accepted."""
    match = _AGE.match(text)
    if match is None:
        raise ValueError(f"`{text}` is not an age: write a number and h, d or w (12h, 3d, 2w)")
    return int(match.group(1)) * _UNITS[match.group(2)]


def working_days_between(start: datetime, end: datetime, timezone: str) -> int:
    """Whole working days (Mon–Fri, on ``timezone``'s wall clock) from ``start`` to ``end``.

    A working day counts once its clock reaches ``start``'s local time of day, the way the
    notifier counts days to a reminder, so "5 working days" means the same to a signer's
    reminder and to an operator looking for stuck documents. Public holidays are not known here.
    """
    zone = ZoneInfo(timezone)
    first, last = start.astimezone(zone), end.astimezone(zone)
    day, counted = first.date(), 0
    while (day := day + timedelta(days=1)) <= last.date():
        reached = datetime.combine(day, first.time(), tzinfo=zone) <= last
        if day.weekday() < 5 and reached:
            counted += 1
    return counted


def is_stuck(waiting_since: datetime | None, now: datetime, after: int, timezone: str) -> bool:
    """An active document is stuck once it has waited more than ``after`` working days on its current step."""
    return waiting_since is not None and working_days_between(waiting_since, now, timezone) > after


def shown_title(title: str, *, confidential: bool, shielded: bool) -> str:
    """What an operator may see of a title: an operator gets Access.TRAIL for confidential and shielded documents."""
    return HIDDEN_TITLE if confidential or shielded else title


def topic_matches(pattern: str, routing_key: str) -> bool:
    """AMQP topic matching: ``*`` is exactly one word, ``#`` zero or more (what a binding key on esign.events does)."""
    return _words_match(pattern.split("."), routing_key.split("."))


def _words_match(pattern: list[str], words: list[str]) -> bool:
    if not pattern:
        return not words
    if pattern[0] == "#":
        return any(_words_match(pattern[1:], words[i:]) for i in range(len(words) + 1))
    return bool(words) and pattern[0] in ("*", words[0]) and _words_match(pattern[1:], words[1:])


def _person(value: Mapping[str, Any] | None) -> str:
    return str(value.get("name") or value.get("id") or "?") if value else "?"


def _behalf(event: Mapping[str, Any]) -> str:
    return f" for {_person(event['on_behalf_of'])}" if event.get("on_behalf_of") else ""


def _step(event: Mapping[str, Any]) -> str:
    total = f"/{event['step_count']}" if "step_count" in event else ""
    return f"step {event.get('step')}{total}"  # steps are numbered from 1, as flows list them


_ASKED = {"sign": "signature", "approve": "approval"}
_DONE = {"sign": "signed", "approve": "approved"}

_SUMMARIES: dict[str, Callable[[Mapping[str, Any]], str]] = {
    "document.submitted": lambda e: f"submitted by {e.get('submitted_by')} via {e.get('source')}/{e.get('external_ref')}",
    "document.accepted": lambda e: f"accepted: flow {e.get('flow') or 'ad hoc'}, {e.get('step_count')} step(s)",
    "document.rejected": lambda e: f"rejected ({e.get('code')}): {e.get('reason')}",
    "signature.requested": lambda e: f"{_ASKED[e.get('action', 'sign')]} requested of {_person(e.get('signer'))}{_behalf(e)},"
    f" {_step(e)}" + (f" ({e['reason']})" if e.get("reason") else ""),
    "signature.reassigned": lambda e: f"moved from {_person(e.get('from_person'))} to {_person(e.get('to_person'))}"
    f" ({e.get('reason')})",
    "signature.cancelled": lambda e: f"request cancelled ({e.get('reason')})",
    "signature.signed": lambda e: f"{_DONE[e.get('action', 'sign')]} by {_person(e.get('signer'))}{_behalf(e)}, {_step(e)}",
    "signature.declined": lambda e: f"declined by {_person(e.get('signer'))}: {e.get('reason')}",
    "document.completed": lambda e: f"completed with {len(e.get('signatures') or [])} signature(s)",
    "document.declined": lambda e: f"declined by {_person(e.get('declined_by'))}: {e.get('reason')}",
    "document.withdrawn": lambda e: f"withdrawn by {e.get('withdrawn_by')}: {e.get('reason')}",
    "routing.unresolved": lambda e: f"nobody available for {_person(e.get('signer'))}: {e.get('reason')}",
    "notification.sent": lambda e: f"{e.get('kind')} mail sent to {e.get('recipient')}",
    "notification.failed": lambda e: f"{e.get('kind')} mail to {e.get('recipient')} failed: {e.get('reason')}",
    "signature.mail-resent": lambda e: f"request mailed again to {_person(e.get('signer'))} <{(e.get('signer') or {}).get('email')}>"
    f" by {e.get('resent_by')}: {e.get('reason')}",
    "timestamp.failed": lambda e: f"time-stamping service {e.get('tsa_url')} failed: {e.get('reason')}",
    "incident.dismissed": lambda e: f"incident {e.get('incident')} dismissed by {e.get('dismissed_by')}: {e.get('reason')}",
    "webhook.abandoned": lambda e: f"webhook of {e.get('source')} ({e.get('url')}) given up after {e.get('attempts')} attempt(s):"
    f" {e.get('reason')}",
    "webhook.delivered": lambda e: f"webhook of {e.get('source')} delivered on redelivery",
    "certificate.revoked": lambda e: f"certificate {e.get('serial')} of {e.get('name')} revoked by {e.get('revoked_by')}: {e.get('reason')}",
    "dead_letter.replayed": lambda e: f"dead letter {e.get('original_routing_key')} replayed from {e.get('queue')}"
    f" by {e.get('replayed_by')} (it had failed: {e.get('dead_lettered_because')})",
    "dead_letter.dropped": lambda e: f"dead letter {e.get('original_routing_key')} dropped from {e.get('queue')}"
    f" by {e.get('dropped_by')}: {e.get('reason')}",
}


def summary(routing_key: str, event: Mapping[str, Any]) -> str:
    """One line saying who did what; never the document's title or a mail's subject (they may be confidential)."""
    describe = _SUMMARIES.get(routing_key)
    return describe(event) if describe else routing_key


def local_time(moment: str | datetime, timezone: str) -> str:
    """An event's instant on the organisation's wall clock, to the second."""
    value = datetime.fromisoformat(moment) if isinstance(moment, str) else moment
    value = value if value.tzinfo else value.replace(tzinfo=UTC)
    return value.astimezone(ZoneInfo(timezone)).strftime("%Y-%m-%d %H:%M:%S")
