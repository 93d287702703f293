"""The operator pages' small rules, without I/O: which title an operator sees per document, how a step is
coloured, what the live stream lets through her filters, how the page reads its filters, and that every
word of the operator pages exists in Dutch, French and English."""

import asyncio
import json
import re
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from starlette.requests import Request

from services.ops import rules
from services.ops.rules import HIDDEN_TITLE
from services.signer.event_words import describe
from services.signer.http._ops import _filters
from services.signer.live import LogEntry
from services.signer.operator import LiveFilters, LiveView, tone, viewer_title
from services.signer.portal import Person
from services.signer.portal_texts import _TEXTS

TEMPLATES = Path(__file__).resolve().parents[2] / "services" / "signer" / "templates"
IRIS = Person("default", "iris", "Iris", "iris@x.be", "ICT", "en", frozenset({"ict"}), frozenset({"operator"}))


def _record(**facts: Any) -> dict[str, Any]:
    return {"org": "default", "title": "Evaluatie Karel", "submitter": "hilde", "asked": [], "group_key": "personeel",
            "confidential": False, "shielded": False, **facts}


@pytest.mark.parametrize(
    ("facts", "shown"),
    [
        ({}, "Evaluatie Karel"),  # an ordinary document: operators see it whole
        ({"confidential": True}, HIDDEN_TITLE),
        ({"confidential": True, "asked": ["iris"]}, "Evaluatie Karel"),  # she was asked to sign it
        ({"confidential": True, "submitter": "iris"}, "Evaluatie Karel"),  # she submitted it
        ({"shielded": True}, HIDDEN_TITLE),
        ({"shielded": True, "asked": ["iris"]}, HIDDEN_TITLE),  # a shielded group's document stays inside the group
    ],
)
def test_an_operator_sees_a_title_only_where_the_visibility_policy_lets_her(facts: dict[str, Any], shown: str) -> None:
    assert viewer_title(IRIS, _record(**facts)) == shown


def test_declines_and_failures_look_bad_signatures_and_completion_good_the_rest_plain() -> None:
    assert [tone(k) for k in ("notification.failed", "document.declined", "signature.signed", "document.completed",
                              "notification.sent")] == ["bad", "bad", "good", "good", ""]


def _entry(seq: int, routing_key: str, org: str = "default") -> LogEntry:
    event = {"event_id": str(uuid4()), "occurred_at": "2026-11-30T09:00:00+00:00", "recipient": "ann@x.be", "kind": "sign_in"}
    return LogEntry(seq, org, None, routing_key, json.dumps({"routing_key": routing_key, "event": event}))


def test_the_live_stream_shows_only_her_orgs_entries_that_match_her_type_pattern() -> None:
    """Entries without a document need no database: another org's never shows; `notification.*` keeps mails only."""
    view = LiveView(IRIS, LiveFilters(type="notification.*"), "Europe/Brussels", pool=None)  # type: ignore[arg-type]
    shown = [asyncio.run(view.shown(e)) for e in (_entry(1, "notification.sent"), _entry(2, "notification.sent", "othercity"),
                                                  _entry(3, "incident.dismissed"))]
    assert shown[1:] == [None, None]
    assert shown[0] == {"seq": 1, "at": "2026-11-30 10:00:00", "type": "notification.sent", "document": "", "title": "",
                        "hidden": False, "source": None, "ref": None, "linked": False, "what": "sign_in mail sent to ann@x.be",
                        "tone": ""}
    only_one = LiveView(IRIS, LiveFilters(document="0a"), "Europe/Brussels", pool=None)  # type: ignore[arg-type]
    assert asyncio.run(only_one.shown(_entry(4, "notification.sent"))) is None  # no document: not the one asked for


def _request(query: str) -> Request:
    return Request({"type": "http", "method": "GET", "path": "/p/ops/documents", "query_string": query.encode(), "headers": []})


def test_the_documents_page_reads_the_filters_of_paraaf_documents_and_names_what_is_wrong() -> None:
    filters, problem = _filters(_request("status=stuck&source=notula&waiting_on=ann&older_than=3d&department=+Bestuur+"))
    assert problem is None and (filters.status, filters.source, filters.waiting_on, filters.department) == (
        "stuck", "notula", "ann", "Bestuur")
    assert filters.older_than is not None and filters.older_than.days == 3
    assert _filters(_request("older_than=3+days"))[1] == "ops_bad_age"
    assert _filters(_request("status=lost"))[1] == "ops_bad_status"


def test_every_word_the_operator_pages_use_exists_in_dutch_french_and_english() -> None:
    used = set()
    for name in ("ops_base", "ops_nav", "ops_documents", "ops_timeline", "ops_live", "portal_base"):
        template = TEMPLATES / f"{name}.html"
        text = template.read_text()
        used |= set(re.findall(r"\bp\.([a-z_]+)", text)) | set(re.findall(r"\"((?:ops|nav)_[a-z_]+)\"", text))
    used = {u for u in used if not u.endswith("_")} | {f"ops_status_{s}" for s in ("waiting", "stuck", "completed", "declined", "withdrawn")}
    for language, words in _TEXTS.items():
        assert used <= set(words), (language, used - set(words))


_EVENT = {
    "submitted_by": "elen.elaut", "source": "notula", "external_ref": "BESL-1", "flow": "collegebesluit", "step_count": 2,
    "code": "not_pdf", "reason": "ziek", "signer": {"id": "ann", "name": "Ann Aerts"}, "step": 1, "action": "approve",
    "on_behalf_of": {"id": "bart", "name": "Bart Baert"}, "from_person": {"id": "ann"}, "to_person": {"name": "David"},
    "signatures": [{}, {}], "declined_by": {"name": "Bart Baert"}, "withdrawn_by": "operator:iris", "kind": "reminder",
    "recipient": "ann@x.be", "original_routing_key": "signature.signed", "queue": "router.events", "dropped_by": "iris@host",
}


@pytest.mark.parametrize("routing_key", [*rules._SUMMARIES, "incident.dismissed"])
@pytest.mark.parametrize("event", [_EVENT, {**_EVENT, "action": "sign", "on_behalf_of": None, "flow": None, "reason": None}])
def test_each_events_line_is_paraaf_trails_in_english_and_said_in_dutch_and_french(routing_key: str, event: dict[str, Any]) -> None:
    """English: word for word what `paraaf trail` prints; Dutch and French: their own words, every blank filled."""
    assert describe(routing_key, event, _TEXTS["en"]) == rules.summary(routing_key, event)
    dutch, french = describe(routing_key, event, _TEXTS["nl"]), describe(routing_key, event, _TEXTS["fr"])
    assert "{" not in dutch + french
    if routing_key in rules._SUMMARIES:
        assert len({dutch, french, rules.summary(routing_key, event)}) == 3, (dutch, french)
