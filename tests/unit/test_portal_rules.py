"""The portal's small rules: when a session ends, where a sign-in may lead, what an upload form must hold,
how "To sign" groups what waits, and that every page's words exist in all three languages."""

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import uuid4

import pytest

from services.signer.http._bulk import grouped
from services.signer.http._portal_auth import safe_next
from services.signer.http._portal_forms import UploadForm, _refusal
from services.signer.portal import ToSign
from services.signer.portal_texts import _TEXTS
from services.signer.sessions import Session, SessionPolicy
from shared.events import PersonRef

NOW = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
POLICY = SessionPolicy(idle=timedelta(minutes=30), absolute=timedelta(hours=10))
TEMPLATES = Path(__file__).resolve().parents[2] / "services" / "signer" / "templates"


def _session(*, began: timedelta, seen: timedelta, ended: bool = False) -> Session:
    return Session("default", "karel", "mail", NOW - began, NOW - seen, NOW if ended else None, b"x")


@pytest.mark.parametrize(
    ("began", "seen", "ended", "alive"),
    [
        (timedelta(minutes=5), timedelta(minutes=1), False, True),
        (timedelta(minutes=50), timedelta(minutes=29, seconds=59), False, True),  # used within the idle time
        (timedelta(minutes=50), timedelta(minutes=30), False, False),  # idle 30 minutes
        (timedelta(hours=9, minutes=59), timedelta(seconds=1), False, True),
        (timedelta(hours=10), timedelta(seconds=1), False, False),  # busy all day: still ends after 10 hours
        (timedelta(minutes=5), timedelta(minutes=1), True, False),  # signed out
    ],
)
def test_a_session_ends_after_idle_time_absolute_time_or_sign_out(began: timedelta, seen: timedelta, ended: bool, alive: bool) -> None:
    assert POLICY.alive(_session(began=began, seen=seen, ended=ended), NOW) is alive


@pytest.mark.parametrize(
    ("target", "goes_to"),
    [
        ("/p/documents/1", "/p/documents/1"),
        ("/p/", "/p/"),
        ("https://evil.example/p/", "/p/"),
        ("//evil.example/p/", "/p/"),
        ("/p/\\evil", "/p/"),
        ("/s/token", "/p/"),
        (None, "/p/"),
    ],
)
def test_after_sign_in_only_a_portal_path_is_followed(target: str | None, goes_to: str) -> None:
    assert safe_next(target) == goes_to


def _form(**fields: object) -> UploadForm:
    return UploadForm(**{"form_id": uuid4(), "title": "Nota", "flow": "", "signers": ("pieter",), "confidential": False,
                         "filename": "nota.pdf", **fields})  # type: ignore[arg-type]


PDF = b"%PDF-1.7\n..."


@pytest.mark.parametrize(
    ("form", "pdf", "refusal"),
    [
        (_form(), PDF, None),
        (_form(flow="evaluatieverslag", signers=()), PDF, None),
        (_form(title=""), PDF, "err_missing_title"),
        (_form(), None, "err_missing_pdf"),
        (_form(), b"", "err_missing_pdf"),
        (_form(), b"%PDF-" + b"x" * 200, "err_too_large"),
        (_form(), b"<html>not a pdf</html>", "err_not_pdf"),
        (_form(flow="evaluatieverslag"), PDF, "err_both_routes"),
        (_form(signers=()), PDF, "err_missing_route"),
        (_form(flow="collegebesluit", signers=()), PDF, "err_unknown_flow"),  # not one of her departments' flows
        (_form(signers=("pieter", "nobody")), PDF, "err_missing_route"),
    ],
)
def test_an_upload_form_is_refused_with_the_first_thing_wrong(form: UploadForm, pdf: bytes | None, refusal: str | None) -> None:
    assert _refusal(form, pdf, 100, flows={"evaluatieverslag"}, people={"pieter", "ann"}) == refusal


def test_every_word_the_portal_uses_exists_in_dutch_french_and_english() -> None:
    keys = {language: set(words) for language, words in _TEXTS.items()}
    assert keys["nl"] == keys["fr"] == keys["en"]
    used = set()
    for template in TEMPLATES.glob("portal_*.html"):
        used |= set(re.findall(r"\bp\.([a-z_]+)", template.read_text()))
        used |= set(re.findall(r"p\[\"([a-z_]+)\"", template.read_text()))
    prefixes = {u for u in used if u.endswith("_")}  # p["status_" + document.status]
    assert used - prefixes <= keys["nl"], used - prefixes - keys["nl"]
    for prefix, expected in (("status_", {"active", "completed", "declined", "withdrawn"}),
                             ("req_", {"pending", "signed", "approved", "declined", "reassigned", "cancelled"}),
                             ("read_and_", {"sign", "approve"})):
        assert prefix in prefixes and {prefix + e for e in expected} <= keys["nl"], prefix


def test_to_sign_groups_by_flow_then_submitter_keeping_each_group_oldest_first() -> None:
    """Requests of an ad-hoc flow fall under its label; groups sort by flow, then submitter; within one, the order asked."""
    def asked(title: str, flow: str | None, submitter: str, minutes: int) -> ToSign:
        return ToSign(uuid4(), uuid4(), title, "sign", 1, 1, PersonRef(id=submitter.lower(), name=submitter), None,
                      datetime(2026, 7, 10, tzinfo=UTC) + timedelta(minutes=minutes), False, flow)

    waiting = [asked("A", "Collegebesluit", "Elen", 1), asked("B", None, "Hilde", 2), asked("C", "Collegebesluit", "Elen", 3),
               asked("D", None, "Elen", 4), asked("E", "Collegebesluit", "David", 5)]
    shown = [(flow, name, [r.title for r in group]) for flow, name, group in grouped(waiting, "Zonder vaste flow")]
    assert shown == [
        ("Collegebesluit", "David", ["E"]), ("Collegebesluit", "Elen", ["A", "C"]),
        ("Zonder vaste flow", "Elen", ["D"]), ("Zonder vaste flow", "Hilde", ["B"]),
    ]
