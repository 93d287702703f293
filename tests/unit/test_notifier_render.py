"""Every mail kind renders in Dutch, French and English, with a plain-text and an HTML part."""

from datetime import UTC, datetime
from uuid import uuid4

import pytest

from services.notifier.render import KINDS, LANGUAGES, MailRenderer
from services.notifier.render import LINK as PLACEHOLDER
from shared.events import PersonRef, SignatureRecord

AT = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)  # 10:30 in Brussels
LINK = "http://127.0.0.1:8083/s/abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
PERSON = PersonRef(id="ann.aerts", name="Ann Aerts", email="ann@example.org", title="algemeen directeur")
SUBMITTER = PersonRef(id="elen.elaut", name="Elen Elaut", email="elen@example.org")
ABSENT = PersonRef(id="bart.baert", name="Bart Baert", email="bart@example.org", title="burgemeester")
TITLE = "Collegebesluit <42> & co"

LINKED = {"request", "reminder", "reassigned", "completed", "sign_in"}


def values(kind: str) -> dict:
    link_mail = {
        "recipient": PERSON,
        "on_behalf_of": ABSENT if kind == "reassigned" else None,
        "submitted_by": SUBMITTER,
        "title": TITLE,
        "step": 1,
        "step_count": 2,
        "action": "sign",
        "link": LINK,
        "expires_at": AT,
        "due_at": AT,
        "due_timed": False,
        "overdue": False,
        "requested_at": AT,
        "reminder": 2,
    }
    return {
        "request": link_mail,
        "reminder": link_mail,
        "reassigned": link_mail,
        "moved": {"recipient": ABSENT, "moves": [{"title": TITLE, "to_person": PERSON, "reason": "absent"}] * 2},
        "completed": {
            "recipient": SUBMITTER,
            "title": TITLE,
            "link": LINK,
            "expires_at": AT,
            "signatures": [
                SignatureRecord(request_id=uuid4(), step=1, action="sign", signer=PERSON, signed_at=AT),
            ],
        },
        "declined": {"recipient": SUBMITTER, "title": TITLE, "declined_by": PERSON, "reason": "Bedrag klopt niet"},
        "routing_alert": {
            "signer": ABSENT, "reason": "no substitute available", "document_id": uuid4(), "request_id": uuid4(),
            "occurred_at": AT,
        },
        "sign_in": {"recipient": PERSON, "link": LINK, "expires_at": AT},
        "digest": {"recipient": PERSON, "count": 12, "titles": [TITLE] * 10, "link": "http://127.0.0.1:8083/p/to-sign"},
    }[kind]


# One word per language that only a mail in that language carries in its subject.
SUBJECT_WORDS = {
    "nl": {"request": "ondertekening", "reminder": "Herinnering", "reassigned": "overgedragen", "moved": "afwezigheid",
           "completed": "Ondertekend", "declined": "Geweigerd", "routing_alert": "vervanger",
           "sign_in": "Aanmelden", "digest": "wachten"},
    "fr": {"request": "signer", "reminder": "Rappel", "reassigned": "Transmis", "moved": "absence",
           "completed": "Signé", "declined": "Refusé", "routing_alert": "remplaçant",
           "sign_in": "Connexion", "digest": "attendent"},
    "en": {"request": "signature", "reminder": "Reminder", "reassigned": "Passed on", "moved": "away",
           "completed": "Signed", "declined": "Declined", "routing_alert": "substitute",
           "sign_in": "Sign in", "digest": "waiting"},
}


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_renders_in_each_language(kind: str, language: str) -> None:
    """The subject is in the person's language; the link, where the kind has one, is in both parts."""
    mail = MailRenderer("Europe/Brussels").render(kind, language, **values(kind))
    assert SUBJECT_WORDS[language][kind] in mail.subject
    assert "\n" not in mail.subject
    assert f'lang="{language}"' in mail.html
    if kind in LINKED:
        assert LINK in mail.text and f'href="{LINK}"' in mail.html


def test_a_title_is_escaped_in_html_and_plain_in_text() -> None:
    """A title with < and & cannot inject markup into the HTML part, and reads as written in the text part."""
    mail = MailRenderer().render("request", "nl", **values("request"))
    assert "Collegebesluit &lt;42&gt; &amp; co" in mail.html
    assert TITLE in mail.text and TITLE in mail.subject


def test_dates_are_shown_in_brussels_time_in_the_language_s_format() -> None:
    """09:30 UTC on 2 March reads 10:30 in Brussels, written the Dutch, French or English way."""
    renderer = MailRenderer("Europe/Brussels")
    assert "02-03-2026 om 10:30" in renderer.render("request", "nl", **values("request")).text
    assert "02/03/2026 à 10:30" in renderer.render("request", "fr", **values("request")).text
    assert "02 March 2026 at 10:30" in renderer.render("request", "en", **values("request")).text


def test_an_unknown_language_falls_back_to_dutch() -> None:
    """A person whose language is not nl, fr or en gets the Dutch mail."""
    mail = MailRenderer().render("declined", "de", **values("declined"))
    assert mail.subject.startswith("Geweigerd:")


def test_a_substitute_is_told_on_whose_behalf_they_sign() -> None:
    """The request to a substitute names the absent person and their mandate."""
    mail = MailRenderer().render("reassigned", "nl", **values("reassigned"))
    assert "namens Bart Baert (wnd. burgemeester)" in mail.text


def test_the_absence_notice_lists_every_moved_document() -> None:
    """An absent person's notice names each document that moved and who took it over."""
    mail = MailRenderer().render("moved", "en", **values("moved"))
    assert mail.subject == "Passed on while you are away: 2 documents"
    assert mail.text.count(f'"{TITLE}" to Ann Aerts') == 2


@pytest.mark.parametrize(
    ("language", "subject", "until", "ignore"),
    [
        ("nl", "Aanmelden bij Paraaf", "tot 02-03-2026 om 10:30", "Niemand kan zich aanmelden zonder deze mail."),
        ("fr", "Connexion à Paraaf", "jusqu'au 02/03/2026 à 10:30", "Personne ne peut se connecter sans ce mail."),
        ("en", "Sign in to Paraaf", "until 02 March 2026 at 10:30", "Nobody can sign in without this mail."),
    ],
)
def test_a_sign_in_mail_carries_the_link_once_and_says_it_works_once_for_15_minutes(
    language: str, subject: str, until: str, ignore: str
) -> None:
    """The sign-in mail's link, made at send time, replaces the placeholder in both parts; it tells how long the link
    works, in Brussels time, and that a person who did not ask for it can ignore it."""
    mail = MailRenderer("Europe/Brussels").render("sign_in", language, recipient=PERSON, link=PLACEHOLDER, expires_at=AT)
    sent = mail.with_link(LINK)
    assert sent.subject == subject
    assert PLACEHOLDER not in sent.text + sent.html
    assert sent.text.count(LINK) == 1 and sent.html.count(f'href="{LINK}"') == 1
    assert "15" in sent.text and until in sent.text and until in sent.html
    assert ignore in sent.text and ignore in sent.html
