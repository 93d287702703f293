"""The rules a signing link must pass before it shows a form or takes a signature."""

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from services.signer.domain import LinkRefused, SignerDocument, SigningLink, SigningRequest, check_link
from services.signer.i18n import texts
from services.signer.tokens import csrf_token, csrf_valid, hash_token, mint_token
from shared.contract import LANGUAGES
from shared.events import PersonRef

NOW = datetime(2026, 7, 10, 9, 0, tzinfo=UTC)
ANN = PersonRef(id="ann.aerts", name="Ann Aerts", email="ann.aerts@x.be", language="nl")


def link(**changes: object) -> SigningLink:
    """An open link of step 2 for Ann, changed by ``changes`` (request fields, ``document_status``, ``earlier_open``)."""
    request_fields = {k: changes.pop(k) for k in ("status", "status_reason") if k in changes}
    document_id = uuid4()
    request = SigningRequest(uuid4(), document_id, "default", 2, 2, "sign", ANN, None, "Besluit", "b.pdf", ANN, **request_fields)
    document = SignerDocument(document_id, "default", "0" * 64, status=str(changes.pop("document_status", "active")))
    open_steps = (1, 2) if changes.pop("earlier_open", False) else (2,)
    fields = {"person_id": "ann.aerts", "expires_at": NOW + timedelta(days=1), **changes}
    return replace(SigningLink(b"t", "ann.aerts", NOW, request, document, open_steps=open_steps), **fields)


@pytest.mark.parametrize(
    ("changes", "code", "status"),
    [
        ({"status": "reassigned", "status_reason": "absent"}, "reassigned", 410),
        ({"status": "cancelled"}, "cancelled", 410),
        ({"status": "declined"}, "request_declined", 410),
        ({"status": "signed"}, "used", 410),
        ({"used_at": NOW}, "used", 410),
        ({"document_status": "completed"}, "completed", 410),
        ({"document_status": "declined"}, "declined", 410),
        ({"document_status": "withdrawn"}, "withdrawn", 410),
        ({"expires_at": NOW}, "expired", 410),
        ({"revoked_at": NOW}, "revoked", 410),
        ({"earlier_open": True}, "not_yet", 409),
        ({"person_id": "bart.baert"}, "unknown", 404),
    ],
)
def test_a_link_that_cannot_be_used_says_why(changes: dict, code: str, status: int) -> None:
    """Reassigned, cancelled, declined, used, ended, expired, a later step's or another person's link: refused, each with its own reason."""
    with pytest.raises(LinkRefused) as caught:
        check_link(link(**changes), NOW)
    assert (caught.value.code, caught.value.status) == (code, status)


def test_an_unknown_link_is_not_found() -> None:
    """A token nobody minted answers 404, not 410."""
    with pytest.raises(LinkRefused) as caught:
        check_link(None, NOW)
    assert caught.value.status == 404


def test_an_open_link_passes() -> None:
    """A pending request of an active document within its time is usable."""
    assert check_link(link(), NOW).request.status == "pending"


def test_every_refusal_has_a_sentence_in_dutch_french_and_english() -> None:
    """Each reason a link can be refused for is explained in all three languages, each in its own words."""
    codes = ["unknown", "reassigned", "cancelled", "request_declined", "used", "completed", "declined", "withdrawn",
             "expired", "not_yet"]
    for code in codes:
        assert len({texts(language)[f"gone_{code}"] for language in LANGUAGES}) == 3, code


def test_tokens_carry_256_random_bits_and_are_stored_hashed() -> None:
    """Two tokens differ, are 43 URL-safe characters, and the stored value is their SHA-256."""
    (first, first_hash), (second, _) = mint_token(), mint_token()
    assert first != second and len(first) == 43
    assert first_hash == hash_token(first) and first.encode() not in first_hash


def test_a_csrf_token_is_bound_to_its_link_and_cookie() -> None:
    """The form token of one link, or of another browser's cookie, does not pass."""
    secret = b"k" * 32
    token_hash = hash_token("link-a")
    good = csrf_token(secret, token_hash, "cookie-1")
    assert csrf_valid(secret, token_hash, "cookie-1", good)
    assert not csrf_valid(secret, hash_token("link-b"), "cookie-1", good)
    assert not csrf_valid(secret, token_hash, "cookie-2", good)
    assert not csrf_valid(secret, token_hash, "", good)
