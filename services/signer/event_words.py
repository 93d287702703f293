"""One line per audit-log event in the operator's language, for the timeline and
the live view: the sentence ``paraaf trail`` prints (services/ops/rules.py
``summary``), said in Dutch, French or English with the portal's words
(``ev_*`` in portal_texts.py). Like the command's, these lines never hold a
document's title or a mail's subject.
"""

from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["describe"]

Words = Mapping[str, str]
Event = Mapping[str, Any]


def _person(value: Mapping[str, Any] | None) -> str:
    return str(value.get("name") or value.get("id") or "?") if value else "?"


def _behalf(event: Event, words: Words) -> str:
    return words["ev_behalf"].format(name=_person(event["on_behalf_of"])) if event.get("on_behalf_of") else ""


def _step(event: Event, words: Words) -> str:
    total = f"/{event['step_count']}" if "step_count" in event else ""
    return words["ev_step"].format(step=event.get("step"), total=total)


def _asked(kind: str) -> Callable[[Event, Words], str]:
    def say(e: Event, w: Words) -> str:
        reason = f" ({e['reason']})" if e.get("reason") else ""
        return w.get(f"ev_{kind}_{e.get('action')}", w[f"ev_{kind}_sign"]).format(
            person=_person(e.get("signer")), behalf=_behalf(e, w), step=_step(e, w), reason=reason
        )

    return say


_LINES: dict[str, Callable[[Event, Words], str]] = {
    "document.submitted": lambda e, w: w["ev_document_submitted"].format(
        by=e.get("submitted_by"), source=e.get("source"), ref=e.get("external_ref")
    ),
    "document.accepted": lambda e, w: w["ev_document_accepted"].format(
        flow=e.get("flow") or w["ev_ad_hoc"], steps=e.get("step_count")
    ),
    "document.rejected": lambda e, w: w["ev_document_rejected"].format(code=e.get("code"), reason=e.get("reason")),
    "signature.requested": _asked("requested"),
    "signature.reassigned": lambda e, w: w["ev_signature_reassigned"].format(
        source=_person(e.get("from_person")), target=_person(e.get("to_person")), reason=e.get("reason")
    ),
    "signature.cancelled": lambda e, w: w["ev_signature_cancelled"].format(reason=e.get("reason")),
    "signature.signed": _asked("signed"),
    "signature.declined": lambda e, w: w["ev_signature_declined"].format(person=_person(e.get("signer")), reason=e.get("reason")),
    "document.completed": lambda e, w: w["ev_document_completed"].format(count=len(e.get("signatures") or [])),
    "document.declined": lambda e, w: w["ev_document_declined"].format(person=_person(e.get("declined_by")), reason=e.get("reason")),
    "document.withdrawn": lambda e, w: w["ev_document_withdrawn"].format(by=e.get("withdrawn_by"), reason=e.get("reason")),
    "routing.unresolved": lambda e, w: w["ev_routing_unresolved"].format(person=_person(e.get("signer")), reason=e.get("reason")),
    "notification.sent": lambda e, w: w["ev_notification_sent"].format(kind=e.get("kind"), recipient=e.get("recipient")),
    "notification.failed": lambda e, w: w["ev_notification_failed"].format(
        kind=e.get("kind"), recipient=e.get("recipient"), reason=e.get("reason")
    ),
    "signature.mail-resent": lambda e, w: w["ev_mail_resent"].format(
        person=_person(e.get("signer")), email=(e.get("signer") or {}).get("email"), by=e.get("resent_by"), reason=e.get("reason")
    ),
    "timestamp.failed": lambda e, w: w["ev_timestamp_failed"].format(tsa=e.get("tsa_url"), reason=e.get("reason")),
    "webhook.abandoned": lambda e, w: w["ev_webhook_abandoned"].format(
        source=e.get("source"), url=e.get("url"), attempts=e.get("attempts"), reason=e.get("reason")
    ),
    "webhook.delivered": lambda e, w: w["ev_webhook_delivered"].format(source=e.get("source")),
    "certificate.revoked": lambda e, w: w["ev_certificate_revoked"].format(
        serial=e.get("serial"), name=e.get("name"), by=e.get("revoked_by"), reason=e.get("reason")
    ),
    "incident.dismissed": lambda e, w: w["ev_incident_dismissed"].format(
        incident=e.get("incident"), by=e.get("dismissed_by"), reason=e.get("reason")
    ),
    "dead_letter.replayed": lambda e, w: w["ev_dead_letter_replayed"].format(
        key=e.get("original_routing_key"), queue=e.get("queue"), by=e.get("replayed_by"), why=e.get("dead_lettered_because")
    ),
    "dead_letter.dropped": lambda e, w: w["ev_dead_letter_dropped"].format(
        key=e.get("original_routing_key"), queue=e.get("queue"), by=e.get("dropped_by"), reason=e.get("reason")
    ),
}


def describe(routing_key: str, event: Event, words: Words) -> str:
    """Who did what, in ``words``' language; an event this does not know is named by its routing key."""
    line = _LINES.get(routing_key)
    return line(event, words) if line else routing_key
