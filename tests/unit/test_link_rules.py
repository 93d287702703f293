"""Which links may show a signing form (pure rules of services.signer.signing.check_link)."""

from datetime import UTC, datetime, timedelta

import pytest

from services.signer.signing import LinkRefused, check_link

NOW = datetime(2026, 7, 14, 9, 30, tzinfo=UTC)


def _link(**changes: object) -> dict:
    link = {
        "person_id": "ann.aerts",
        "signer": {"id": "ann.aerts", "name": "Ann Aerts"},
        "status": "pending",
        "status_reason": None,
        "document_status": "active",
        "used_at": None,
        "expires_at": NOW + timedelta(days=1),
    }
    return {**link, **changes}


def test_an_open_link_of_its_own_person_passes() -> None:
    """A pending request, an active document, an unused token before it expires: the form may show."""
    assert check_link(_link(), NOW)["person_id"] == "ann.aerts"


@pytest.mark.parametrize(
    ("changes", "code", "status"),
    [
        ({"status": "reassigned", "status_reason": "absent"}, "reassigned", 410),
        ({"status": "cancelled"}, "cancelled", 410),
        ({"status": "declined"}, "request_declined", 410),
        ({"status": "signed"}, "used", 410),
        ({"used_at": NOW - timedelta(minutes=1)}, "used", 410),
        ({"document_status": "completed"}, "completed", 410),
        ({"document_status": "declined"}, "declined", 410),
        ({"document_status": "withdrawn"}, "withdrawn", 410),
        ({"expires_at": NOW}, "expired", 410),
        ({"person_id": "bart.baert"}, "unknown", 404),
        ({"earlier_open": True}, "not_yet", 409),
    ],
)
def test_a_link_that_cannot_be_used_is_refused_with_its_reason(changes: dict, code: str, status: int) -> None:
    """Reassigned, cancelled, declined, used, ended, expired, another person's or a later step's token: refused, saying why."""
    with pytest.raises(LinkRefused) as refused:
        check_link(_link(**changes), NOW)
    assert (refused.value.code, refused.value.status) == (code, status)


def test_a_token_nobody_minted_is_not_found() -> None:
    """A forged token matches no row: 404, not 410 (nothing was ever there)."""
    with pytest.raises(LinkRefused) as refused:
        check_link(None, NOW)
    assert refused.value.status == 404


def test_every_refusal_has_a_sentence_in_dutch_french_and_english() -> None:
    """Each reason a link can be refused for is explained in all three languages, each in its own words."""
    from services.signer.i18n import LANGUAGES, texts

    codes = ["unknown", "reassigned", "cancelled", "request_declined", "used", "completed", "declined", "withdrawn",
             "expired", "not_yet"]
    for code in codes:
        sentences = {texts(language)[f"gone_{code}"] for language in LANGUAGES}
        assert len(sentences) == 3, code
