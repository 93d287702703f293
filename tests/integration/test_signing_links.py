"""The signing links and page on a real database with real signing workers:
what a signer, a forger and an attacker get from each link."""

import hashlib
import io
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest
from PIL import Image
from pyhanko.pdf_utils.reader import PdfFileReader

from services.signer import handlers
from services.signer.keys import Keyring
from services.signer.pades import SigningPool
from services.signer.render import PAGE_WIDTH_PX, RenderPool, render_page
from services.signer.signing import Stamping
from services.signer.stamps import bottom_box
from services.signer.tokens import csrf_token, hash_token
from shared.events import DocumentCompleted, DocumentDeclined, DocumentWithdrawn, PersonRef, SignatureReassigned
from tests.support.net import free_port
from tests.support.pdfs import make_pdf
from tests.support.signer_harness import KEY_SECRET, SignerHarness, csrf_of
from tests.support.signing import flip_signed_byte
from tests.support.validate import pyhanko_validate

ANN = PersonRef(id="ann.aerts", name="Ann Aerts", email="ann@x.be", title="algemeen directeur")
BART = PersonRef(id="bart.baert", name="Bart Baert", email="bart@x.be", title="burgemeester")
MARC = PersonRef(id="marc.maes", name="Marc Maes", email="marc@x.be", title="schepen", language="fr")
DAVID = PersonRef(id="david.dewit", name="David De Wit", email="david@x.be", language="en")


async def _nothing_signed(signer: SignerHarness, document_id: object) -> bool:
    revision, _ = await signer.document(document_id)
    return revision == 0 and not await signer.published("signature.signed")


async def test_a_signer_signs_by_link_and_the_pdf_gets_a_valid_trusted_signature(signer: SignerHarness) -> None:
    """Open the link, press Sign: a confirmation, a signature.signed event and a PDF pyHanko calls valid and trusted."""
    document = await signer.new_document(make_pdf(2))
    _, link = await signer.request(document, ANN)
    response = await signer.sign(link)
    assert response.status_code == 200 and "U hebt “Collegebesluit 42” ondertekend" in response.text
    (signed,) = await signer.published("signature.signed")
    assert signed["field_name"] == "Signature1" and signed["revision"] == 1
    _, pdf = await signer.document(document[0])
    root = (await signer.client.get("/ca.pem")).content
    (report,) = await pyhanko_validate(pdf, root)
    assert (report.signer, report.intact, report.trusted) == ("Ann Aerts", True, True)


async def test_a_forged_token_shows_no_form_and_signs_nothing(signer: SignerHarness) -> None:
    """A made-up token: 404 with a sentence, no form; a POST to it adds no signature."""
    document = await signer.new_document(make_pdf())
    await signer.request(document, ANN)
    forged = "/s/" + "A" * 43
    page = await signer.client.get(forged)
    assert page.status_code == 404 and "Deze link bestaat niet" in page.text and "<form" not in page.text
    posted = await signer.client.post(f"{forged}/sign", data={"csrf": "0" * 64})
    assert posted.status_code in (403, 404)
    assert await _nothing_signed(signer, document[0])


async def test_an_expired_link_is_refused_and_signs_nothing(signer: SignerHarness) -> None:
    """A link minted 22 days ago with a 21-day lifetime: 410 saying it expired, and pressing Sign with an old form does nothing."""
    document = await signer.new_document(make_pdf())
    _, link = await signer.request(document, ANN, links=signer.links(minted_at=datetime.now(UTC) - timedelta(days=22)))
    page = await signer.client.get(link)
    assert page.status_code == 410 and "verlopen" in page.text and "<form" not in page.text
    # a form kept open from before it expired: the CSRF value is valid, the link is not
    await _post_with_valid_csrf(signer, link, expect=410)
    assert await _nothing_signed(signer, document[0])


async def _post_with_valid_csrf(signer: SignerHarness, link: str, *, expect: int) -> None:
    """POST sign with a CSRF value made exactly as the page makes it, so only the link rules can refuse."""
    token = link.rsplit("/", 1)[1]
    signer.client.cookies.set("paraaf_csrf", "nonce-1", domain="signer.test", path="/s/")
    response = await signer.client.post(
        f"{link}/sign", data={"csrf": csrf_token(b"test-csrf-secret", hash_token(token), "nonce-1")}
    )
    assert response.status_code == expect, response.text
    assert "<form" not in response.text


async def test_a_used_link_cannot_sign_twice(signer: SignerHarness) -> None:
    """After signing, the same link and the same form again: 410 "already used", still one signature."""
    document = await signer.new_document(make_pdf())
    _, link = await signer.request(document, ANN)
    page = await signer.client.get(link)
    csrf = csrf_of(page)
    assert (await signer.client.post(f"{link}/sign", data={"csrf": csrf})).status_code == 200
    again = await signer.client.post(f"{link}/sign", data={"csrf": csrf})
    assert again.status_code == 410 and "al gebruikt" in again.text
    assert (await signer.client.get(link)).status_code == 410
    revision, _ = await signer.document(document[0])
    assert revision == 1 and len(await signer.published("signature.signed")) == 1


async def test_a_reassigned_link_answers_410_and_signs_nothing(signer: SignerHarness) -> None:
    """The mayor went on leave and his request moved to a substitute: his link says so, without a form, and cannot sign."""
    document = await signer.new_document(make_pdf())
    request_id, link = await signer.request(document, BART)
    page = await signer.client.get(link)
    csrf = csrf_of(page)
    moved = SignatureReassigned(
        correlation_id=document[0],
        request_id=request_id,
        new_request_id=request_id,
        from_person=BART,
        to_person=ANN,
        reason="absent",
    )
    await signer.in_store(lambda store: handlers.on_signature_reassigned(moved, store))
    refused = await signer.client.get(link)
    assert refused.status_code == 410 and "doorgegeven aan een vervanger" in refused.text and "<form" not in refused.text
    assert (await signer.client.post(f"{link}/sign", data={"csrf": csrf})).status_code == 410
    assert await _nothing_signed(signer, document[0])


async def test_a_post_without_csrf_token_is_refused_and_signs_nothing(signer: SignerHarness) -> None:
    """A cross-site form posting to a valid link without the page's CSRF value: 403, no signature."""
    document = await signer.new_document(make_pdf())
    _, link = await signer.request(document, ANN)
    await signer.client.get(link)  # the victim has the cookie
    assert (await signer.client.post(f"{link}/sign", data={})).status_code == 403
    assert (await signer.client.post(f"{link}/decline", data={"reason": "no"})).status_code == 403
    assert await _nothing_signed(signer, document[0])
    assert not await signer.published("signature.declined")


async def test_a_link_for_step_two_does_nothing_before_step_one_is_done(signer: SignerHarness) -> None:
    """Even if a step-2 link existed while step 1 is open, it shows no form and cannot sign; once step 1 signed, it works."""
    document = await signer.new_document(make_pdf())
    _, first = await signer.request(document, ANN, step=1, step_count=2)
    _, second = await signer.request(document, BART, step=2, step_count=2)
    page = await signer.client.get(second)
    assert page.status_code == 409 and "eerdere stap" in page.text and "<form" not in page.text
    await _post_with_valid_csrf(signer, second, expect=409)
    assert await _nothing_signed(signer, document[0])
    assert (await signer.sign(first)).status_code == 200
    assert (await signer.sign(second)).status_code == 200
    revision, _ = await signer.document(document[0])
    assert revision == 2


@pytest.mark.parametrize(
    ("ending", "sentence"),
    [
        ("completed", "al volledig ondertekend"),
        ("declined", "werd geweigerd"),
        ("withdrawn", "ingetrokken"),
    ],
)
async def test_a_link_of_an_ended_document_says_why_without_a_form(signer: SignerHarness, ending: str, sentence: str) -> None:
    """Completed, declined or withdrawn: the open link answers 410 with what happened, and cannot sign."""
    document = await signer.new_document(make_pdf())
    _, link = await signer.request(document, ANN)
    csrf = csrf_of(await signer.client.get(link))
    event = {
        "completed": DocumentCompleted(correlation_id=document[0], pdf_sha256=document[1], signatures=[]),
        "declined": DocumentDeclined(correlation_id=document[0], declined_by=BART, reason="fout bedrag"),
        "withdrawn": DocumentWithdrawn(correlation_id=document[0], withdrawn_by="elen.elaut", reason="vergissing"),
    }[ending]
    await signer.in_store(lambda store: handlers.on_document_ended(event, store))
    page = await signer.client.get(link)
    assert page.status_code == 410 and sentence in page.text and "<form" not in page.text
    assert (await signer.client.post(f"{link}/sign", data={"csrf": csrf})).status_code == 410
    assert await _nothing_signed(signer, document[0])


async def test_the_page_shows_title_submitter_step_earlier_signers_and_every_page_as_a_picture(signer: SignerHarness) -> None:
    """Step 2 of 3 of a 3-page document: who submitted it, who signed step 1, and three page pictures that load."""
    document = await signer.new_document(make_pdf(3))
    _, first = await signer.request(document, ANN, step=1, step_count=3)
    await signer.sign(first)
    _, second = await signer.request(document, BART, step=2, step_count=3)
    page = await signer.client.get(second)
    assert page.status_code == 200
    for words in ("Collegebesluit 42", "Ingediend door: Elen Elaut", "Stap 2 van 3", "Ann Aerts (algemeen directeur)"):
        assert words in page.text, words
    assert page.headers["content-security-policy"].endswith("frame-ancestors 'none'")
    for number in (1, 2, 3):
        picture = await signer.client.get(f"{second}/pages/{number}.png")
        assert picture.status_code == 200 and picture.content.startswith(b"\x89PNG"), number
        assert f'alt="Pagina {number} van 3"' in page.text
    assert (await signer.client.get(f"{second}/pages/4.png")).status_code == 404


async def test_the_page_speaks_french_or_english_by_the_signers_language(signer: SignerHarness) -> None:
    """Marc (fr) sees « Signer le document », David (en) sees "Sign the document"."""
    document = await signer.new_document(make_pdf())
    _, marc = await signer.request(document, MARC)
    _, david = await signer.request(document, DAVID)
    french, english = await signer.client.get(marc), await signer.client.get(david)
    assert '<html lang="fr">' in french.text and "Signer le document" in french.text and "Étape 1 sur 1" in french.text
    assert '<html lang="en">' in english.text and "Sign the document" in english.text and "Step 1 of 1" in english.text


async def test_declining_needs_a_reason_and_then_stops_with_it(signer: SignerHarness) -> None:
    """An empty reason brings the form back with an error; a reason declines and the event carries it."""
    document = await signer.new_document(make_pdf())
    _, link = await signer.request(document, ANN)
    csrf = csrf_of(await signer.client.get(link))
    empty = await signer.client.post(f"{link}/decline", data={"csrf": csrf, "reason": "  "})
    assert empty.status_code == 422 and 'role="alert"' in empty.text and "Geef een reden op" in empty.text
    assert not await signer.published("signature.declined")
    done = await signer.client.post(f"{link}/decline", data={"csrf": csrf, "reason": "Het bedrag klopt niet."})
    assert done.status_code == 200 and "geweigerd" in done.text
    (declined,) = await signer.published("signature.declined")
    assert declined["reason"] == "Het bedrag klopt niet."
    assert await _nothing_signed(signer, document[0])


async def test_post_verify_reports_each_signature_and_flags_a_tampered_copy(signer: SignerHarness) -> None:
    """POST /verify with a signed PDF: JSON says ok with the signer; the text form says FAILED for a copy with one byte flipped."""
    document = await signer.new_document(make_pdf())
    _, link = await signer.request(document, BART, on_behalf_of=ANN)
    await signer.sign(link)
    _, pdf = await signer.document(document[0])
    report = (await signer.client.post("/verify", content=pdf, headers={"content-type": "application/pdf"})).json()
    assert report["ok"] is True
    (signature,) = report["signatures"]
    assert (signature["signer"], signature["title"], signature["on_behalf_of"]) == (
        "Bart Baert",
        "burgemeester",
        "algemeen directeur (Ann Aerts)",
    )
    assert signature["intact"] and signature["trusted"]
    tampered = await signer.client.post(
        "/verify?format=text", files={"file": ("besluit.pdf", flip_signed_byte(pdf), "application/pdf")}
    )
    assert tampered.status_code == 200 and tampered.text.startswith("FAILED")
    assert "tampered" in tampered.text


async def test_an_approval_step_is_recorded_without_touching_the_pdf(signer: SignerHarness) -> None:
    """A paraaf (approve) step: the page offers Goedkeuren, and approving records it but leaves the PDF as it was."""
    document = await signer.new_document(make_pdf())
    _, link = await signer.request(document, ANN, action="approve")
    page = await signer.client.get(link)
    assert "Document goedkeuren (paraaf)" in page.text
    done = await signer.client.post(f"{link}/sign", data={"csrf": csrf_of(page)})
    assert done.status_code == 200 and "goedgekeurd" in done.text
    (approved,) = await signer.published("signature.signed")
    assert approved["action"] == "approve" and approved["field_name"] is None
    revision, pdf = await signer.document(document[0])
    assert revision == 0 and pdf == make_pdf()


async def test_a_placeholder_is_found_when_the_request_arrives_and_carries_the_stamp(signer: SignerHarness) -> None:
    """A PDF with [SIG01]: its position is known before anyone presses Sign, and the signature's field sits on it."""
    document = await signer.new_document(make_pdf(2, placeholder="[SIG01]"))
    _, link = await signer.request(document, ANN)
    stored = await signer.pool.fetchval("SELECT placeholders FROM signer.documents WHERE document_id = $1", document[0])
    assert [(p["number"], p["page"]) for p in stored] == [(1, 1)]
    assert (await signer.sign(link)).status_code == 200
    _, pdf = await signer.document(document[0])
    (field,) = [f.get_object() for f in PdfFileReader(io.BytesIO(pdf), strict=False).root["/AcroForm"]["/Fields"]]
    llx, lly, urx, ury = (float(v) for v in field["/Rect"])
    assert llx <= 72 <= urx and lly < 746 < ury  # make_pdf's placeholder: x 72, baseline 746, last page


async def test_each_new_link_for_a_request_revokes_the_one_before(signer: SignerHarness) -> None:
    """A reminder's link (asked for by the notifier as it sends) makes the first mail's link answer 410 'use your latest mail'; the new one works."""
    document = await signer.new_document(make_pdf())
    request_id, first = await signer.request(document, ANN)
    second = await signer.link_for(request_id)
    old = await signer.client.get(first)
    assert old.status_code == 410 and "nieuwere" in old.text and "<form" not in old.text
    assert (await signer.sign(second)).status_code == 200


async def test_the_link_api_answers_only_the_notifier_s_key(signer: SignerHarness) -> None:
    """POST /internal/links without a key is 401, with a key lacking the `links` scope 403; for a closed request 410."""
    from shared import apikeys

    document = await signer.new_document(make_pdf())
    request_id, link = await signer.request(document, ANN)
    async with signer.pool.acquire() as conn:
        _, operator = await apikeys.create_key(conn, org="default", name="ops", scopes=["operate"])
    body = {"kind": "signing", "request_id": str(request_id), "mail_id": str(request_id)}
    assert (await signer.client.post("/internal/links", json=body)).status_code == 401
    assert (
        await signer.client.post("/internal/links", json=body, headers={"Authorization": f"Bearer {operator}"})
    ).status_code == 403
    await signer.sign(link)
    closed = await signer.client.post("/internal/links", json=body, headers={"Authorization": f"Bearer {signer.links_key}"})
    assert closed.status_code == 410


async def test_the_next_signer_sees_the_stamp_of_the_one_before_in_the_page_picture(signer: SignerHarness) -> None:
    """Step 1 sees a blank foot of the page; after Sign, step 2's picture of the same page carries step 1's stamp
    there (a new version is drawn anew, never served from the picture of the one before)."""
    document = await signer.new_document(make_pdf(1))
    _, first = await signer.request(document, ANN, step=1, step_count=2)
    await signer.client.get(first)
    before = Image.open(io.BytesIO((await signer.client.get(f"{first}/pages/1.png")).content))
    await signer.sign(first)
    _, second = await signer.request(document, BART, step=2, step_count=2)
    await signer.client.get(second)
    after = Image.open(io.BytesIO((await signer.client.get(f"{second}/pages/1.png")).content))
    scale = PAGE_WIDTH_PX / 595
    left, bottom, right, top = bottom_box((0, 0, 595, 842), 0)
    stamp = tuple(round(v * scale) for v in (left, 842 - top, right, 842 - bottom))
    assert before.convert("L").crop(stamp).getextrema()[0] > 200, "no ink where the stamp goes before it is signed"
    assert after.convert("L").crop(stamp).getextrema()[0] < 100, "the stamp's ink in the next signer's picture"


async def test_the_next_signer_of_a_long_document_gets_its_unchanged_first_page_without_it_being_drawn_again(
    signer: SignerHarness,
) -> None:
    """A stamp on the last page leaves the first as it was: the next signer's first picture is at hand before anyone
    opens the new version (kept from the version before), and it and the stamped last page are what PDFium draws of
    the new version."""
    document = await signer.new_document(make_pdf(3, text=f"long {uuid4()}"))
    _, first = await signer.request(document, ANN, step=1, step_count=2)
    assert (await signer.sign(first)).status_code == 200  # opens the page (its first picture drawn), then Sign
    _, pdf = await signer.document(document[0])
    assert signer.render_pool.known_page(hashlib.sha256(pdf).hexdigest(), 0) is not None
    _, second = await signer.request(document, BART, step=2, step_count=2)
    assert (await signer.client.get(second)).status_code == 200
    assert (await signer.client.get(f"{second}/pages/1.png")).content == render_page(pdf, 0)
    assert (await signer.client.get(f"{second}/pages/3.png")).content == render_page(pdf, 2)


async def test_behind_a_tls_proxy_the_csrf_cookie_is_secure(
    database_url: str, signing_pool: SigningPool, render_pool: RenderPool
) -> None:
    """With PARAAF_PUBLIC_URL on https the page's cookie is Secure even though the proxy speaks plain http to Paraaf."""
    async with SignerHarness(database_url, signing_pool, render_pool, secure_cookies=True) as signer:
        document = await signer.new_document(make_pdf())
        _, link = await signer.request(document, ANN)
        page = await signer.client.get(link)
    cookie = page.headers["set-cookie"]
    assert "paraaf_csrf=" in cookie and "Secure" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie


async def test_verify_is_rate_limited_per_address(database_url: str, signing_pool: SigningPool, render_pool: RenderPool) -> None:
    """With 3 verifications a minute allowed, the 4th from the same address is 429 with Retry-After."""
    from services.signer.http import VerifyLimits

    async with SignerHarness(database_url, signing_pool, render_pool, verify_limits=VerifyLimits(per_minute=3)) as signer:
        answers = [
            await signer.client.post("/verify", content=make_pdf(), headers={"Content-Type": "application/pdf"}) for _ in range(4)
        ]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert int(answers[-1].headers["retry-after"]) >= 1


async def test_a_verification_over_its_time_is_stopped(
    database_url: str, signing_pool: SigningPool, render_pool: RenderPool
) -> None:
    """Given 0.001 s, a verification is stopped (its worker killed) and answered 422 with a sentence."""
    from services.signer.http import VerifyLimits

    async with SignerHarness(database_url, signing_pool, render_pool, verify_limits=VerifyLimits(seconds=0.001)) as signer:
        answer = await signer.client.post("/verify", content=make_pdf(), headers={"Content-Type": "application/pdf"})
    assert answer.status_code == 422 and "within the time" in answer.json()["error"]


async def test_a_page_the_renderer_cannot_draw_in_time_leaves_the_pdf_and_the_buttons(
    database_url: str, signing_pool: SigningPool
) -> None:
    """With drawing stopped after 1 ms, the signing page still opens with Sign and the PDF link, a page picture answers
    422 with a sentence, and signing works."""
    slow = RenderPool(1, seconds=0.001)
    try:
        async with SignerHarness(database_url, signing_pool, slow) as signer:
            document = await signer.new_document(make_pdf(2))
            _, link = await signer.request(document, ANN)
            page = await signer.client.get(link)
            picture = await signer.client.get(f"{link}/pages/1.png")
            signed = await signer.sign(link)
    finally:
        slow.close()
    assert page.status_code == 200 and "document.pdf" in page.text and "<form" in page.text
    assert picture.status_code == 422 and "open the PDF" in picture.text
    assert signed.status_code == 200


async def test_with_the_time_stamping_service_down_nothing_is_signed_and_the_link_still_works(
    database_url: str, signing_pool: SigningPool, render_pool: RenderPool
) -> None:
    """With PARAAF_TSA_URL on a port where nothing answers, pressing Sign shows 503 saying nothing was signed and to
    try again; no signature is made, and the link still opens the signing page."""
    down = Stamping(tsa_url=f"http://127.0.0.1:{free_port()}/tsa")
    async with SignerHarness(database_url, signing_pool, render_pool, stamping=down) as signer:
        document = await signer.new_document(make_pdf())
        _, link = await signer.request(document, ANN)
        answer = await signer.sign(link)
        assert answer.status_code == 503 and "er is niets ondertekend" in answer.text and "<form" in answer.text
        assert await _nothing_signed(signer, document[0])
        assert (await signer.client.get(link)).status_code == 200


async def test_opening_the_signing_page_draws_its_first_picture_in_the_same_job(signer: SignerHarness) -> None:
    """Once the page has opened, its first picture is at hand for the browser (no second job, no second PDF fetch),
    and the picture route answers with exactly it. The PDF is this test's own: the harness's pictures are kept by the
    PDF's digest, and another test's identical PDF may have been drawn already."""
    document = await signer.new_document(make_pdf(2, text=f"first look {uuid4()}"))
    _, link = await signer.request(document, ANN)
    _, pdf = await signer.document(document[0])
    digest = hashlib.sha256(pdf).hexdigest()
    assert signer.render_pool.known_page(digest, 0) is None
    assert (await signer.client.get(link)).status_code == 200
    drawn = signer.render_pool.known_page(digest, 0)
    assert drawn is not None and drawn.startswith(b"\x89PNG")
    assert (await signer.client.get(f"{link}/pages/1.png")).content == drawn


async def test_a_signature_after_a_revocation_elsewhere_is_made_with_a_new_certificate(signer: SignerHarness) -> None:
    """Ann's certificate revoked by another process (`paraaf ca revoke`) after her second request arrived: her second
    signature is made with a new certificate, though this process handed the revoked one out."""
    first = await signer.new_document(make_pdf(1))
    _, link = await signer.request(first, ANN)
    assert (await signer.sign(link)).status_code == 200
    _, link = await signer.request(await signer.new_document(make_pdf(2)), ANN)
    elsewhere = Keyring(KEY_SECRET.encode(), "Stad Testegem")
    async with signer.pool.acquire() as conn:
        await elsewhere.unlock(conn)
        [revoked] = await elsewhere.revoke(conn, "default", ANN.id, title=None, reason="lost card", by="test", at=datetime.now(UTC))
    assert (await signer.sign(link)).status_code == 200
    serials = []
    for document_id in (first[0], (await signer.published("signature.signed"))[-1]["correlation_id"]):
        _, pdf = await signer.document(document_id)
        serials.append(PdfFileReader(io.BytesIO(pdf)).embedded_signatures[-1].signer_cert.serial_number)
    assert serials[0] == revoked.serial != serials[1]
