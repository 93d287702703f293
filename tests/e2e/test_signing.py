"""Signing as people do it, every service its own OS process: five signers one
after the other with both validators checking the PDF after each signature,
and a phone-sized Chromium that signs or declines from the emailed link; and
the verification code a citizen finds on every page of the signed PDF, checked
on the public /check page from a phone.

The tests share one running city (starting one costs seconds): each submits its own document with its own title and
external_ref and finds its mails by that title, so each passes alone and in any order."""

import asyncio
import base64
import re
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from tests.conftest import Infra, city_on_fresh_install
from tests.support.browser import CHROMIUM_ARGS
from tests.support.pdfs import make_pdf
from tests.support.signing import flip_signed_byte
from tests.support.smtp import SmtpServer
from tests.support.system import ARTIFACTS, Outcomes, System, follow_link, submission
from tests.support.validate import pdfsig, pyhanko_validate

pytestmark = pytest.mark.e2e

FIVE = [
    ("role:algemeen-directeur", "ann.aerts@demo.paraaf.be", "Ann Aerts"),
    ("role:burgemeester", "bart.baert@demo.paraaf.be", "Bart Baert"),
    ("person:sofie.smet", "sofie.smet@demo.paraaf.be", "Sofie Smet"),
    ("person:marc.maes", "marc.maes@demo.paraaf.be", "Marc Maes"),
    ("person:david.dewit", "david.dewit@demo.paraaf.be", "David De Wit"),
]


@pytest.fixture(scope="module")
async def system(infra: Infra, secrets_dir: str) -> AsyncIterator[System]:
    async with city_on_fresh_install(infra, secrets_dir, "signing") as system:
        yield system


@pytest.fixture
def smtp_server(system: System) -> SmtpServer:
    """The city's SMTP server, shared by the module's tests: find a test's mails by its document's title."""
    return system.smtp  # type: ignore[attr-defined]


@pytest.fixture
def shots(request: pytest.FixtureRequest) -> Path:
    """Where this test's screenshots go: tests/artifacts/<test>/."""
    folder = ARTIFACTS / request.node.name
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
async def phone() -> AsyncIterator[Page]:
    """Chromium as a phone: 390x844 CSS pixels, touch, Dutch."""
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        context = await browser.new_context(
            viewport={"width": 390, "height": 844}, device_scale_factor=3, is_mobile=True, has_touch=True, locale="nl-BE"
        )
        yield await context.new_page()
        await browser.close()


async def _assert_all_valid(pdf: bytes, root: bytes, signers: list[str]) -> None:
    reports = await pyhanko_validate(pdf, root)
    assert [r.signer for r in reports] == signers
    assert all(r.intact and r.valid and r.trusted for r in reports), reports
    assert [r.coverage for r in reports] == ["ENTIRE_REVISION"] * (len(signers) - 1) + ["ENTIRE_FILE"], reports
    poppler = pdfsig(pdf, root)
    assert [r.signer for r in poppler] == signers
    assert all(r.signature_valid and r.certificate_trusted for r in poppler), [r.raw for r in poppler]


async def test_five_signers_in_turn_each_leave_every_signature_so_far_valid_in_both_validators(
    system: System, smtp_server: SmtpServer, tmp_path: Path
) -> None:
    """Five sequential steps: after each signature pyHanko and pdfsig accept every signature so far; the final PDF verifies, and a flipped byte fails everywhere."""
    steps = [{"action": "sign", "signers": [signer]} for signer, _, _ in FIVE]
    title = "Besluit vijf handtekeningen"
    async with Outcomes(system.amqp_url, "notula.*") as outcomes:
        body = submission(make_pdf(pages=3), external_ref="FIVE-1", title=title, flow=None, steps=steps)
        del body["flow"]
        await system.publish(body)
        root = await system.root_certificate()
        for number, (_, email, _) in enumerate(FIVE):
            link = (await smtp_server.wait_for_mail(email, about=title))[0].signing_link
            async with httpx.AsyncClient() as browser:
                if number > 0:  # the document as this signer receives it: every earlier signature in it
                    current = (await browser.get(f"{link}/document.pdf")).content
                    await _assert_all_valid(current, root, [name for _, _, name in FIVE[:number]])
                if number + 1 < len(FIVE):
                    assert not smtp_server.received_by(FIVE[number + 1][1], about=title), "no link before its turn"
                assert (await follow_link(browser, link)).status_code == 200
        completed = await outcomes.wait("notula.completed", "FIVE-1")

    signed = base64.b64decode(completed["pdf"])
    await _assert_all_valid(signed, root, [name for _, _, name in FIVE])
    (tmp_path / "signed.pdf").write_bytes(signed)
    (tmp_path / "tampered.pdf").write_bytes(flip_signed_byte(signed))
    verified = system.cli("verify", str(tmp_path / "signed.pdf"))
    assert verified.stdout.startswith("OK: 5 signature(s)"), verified.stdout
    assert re.search(r"^verification code: \d{4} \d{4} \d{4} \d{4} ", verified.stdout, re.MULTILINE), verified.stdout
    kinds = [line.split(":", 1)[1].strip() for line in verified.stdout.splitlines() if line.strip().startswith("kind:")]
    assert kinds == ["certification (DocMDP)"] + ["approval"] * 4, "the first signature locks the document"
    assert not any(r.intact for r in await pyhanko_validate(flip_signed_byte(signed), root))
    assert not any(r.signature_valid for r in pdfsig(flip_signed_byte(signed), root))
    refused = system.cli("verify", str(tmp_path / "tampered.pdf"), check=False)
    assert refused.returncode == 1 and refused.stdout.startswith("FAILED"), refused.stdout


async def test_a_signer_on_a_phone_sees_the_document_signs_and_gets_a_confirmation(
    system: System, smtp_server: SmtpServer, phone: Page, shots: Path
) -> None:
    """From the emailed link at 390x844: title, step and the first page picture show; Sign (by keyboard) leads to the confirmation and the next signer's mail."""
    title = "Collegebesluit 42"
    await system.publish(submission(make_pdf(pages=2), external_ref="PHONE-SIGN", title=title))
    link = (await smtp_server.wait_for_mail("ann.aerts@demo.paraaf.be", about=title))[0].signing_link
    await phone.goto(link)
    await expect(phone.get_by_role("heading", level=1)).to_have_text("Document ondertekenen")
    await expect(phone.get_by_text("Stap 1 van 2")).to_be_visible()
    first_page = phone.get_by_alt_text("Pagina 1 van 2")
    await expect(first_page).to_be_visible()
    assert await first_page.evaluate("img => img.complete && img.naturalWidth") > 0, "the page picture loaded"
    await phone.screenshot(path=str(shots / "01-signing-page.png"))
    await phone.screenshot(path=str(shots / "02-signing-page-full.png"), full_page=True)
    sign = phone.get_by_role("button", name="Ondertekenen")
    await sign.focus()
    await phone.keyboard.press("Enter")
    await expect(phone.get_by_text("U hebt “Collegebesluit 42” ondertekend")).to_be_visible()
    await phone.screenshot(path=str(shots / "03-signed.png"))
    await smtp_server.wait_for_mail("bart.baert@demo.paraaf.be", about=title)


async def test_a_signer_on_a_phone_declines_with_a_reason_and_the_source_hears_it(
    system: System, smtp_server: SmtpServer, phone: Page, shots: Path
) -> None:
    """From the emailed link: open Decline, type a reason, confirm; the page says declined and the source gets a declined outcome with that reason."""
    async with Outcomes(system.amqp_url, "notula.*") as outcomes:
        await system.publish(submission(make_pdf(), external_ref="PHONE-DECLINE", title="Collegebesluit 43"))
        link = (await smtp_server.wait_for_mail("ann.aerts@demo.paraaf.be", about="Collegebesluit 43"))[0].signing_link
        await phone.goto(link)
        await phone.get_by_text("Weigeren", exact=True).first.tap()
        reason = phone.get_by_label("Reden van weigering (verplicht)")
        await expect(reason).to_be_visible()
        await reason.fill("Het bedrag in artikel 2 klopt niet.")
        await phone.screenshot(path=str(shots / "01-decline-form.png"))
        await phone.get_by_role("button", name="Weigeren").tap()
        await expect(phone.get_by_text("U hebt “Collegebesluit 43” geweigerd")).to_be_visible()
        await phone.screenshot(path=str(shots / "02-declined.png"))
        declined = await outcomes.wait("notula.declined", "PHONE-DECLINE")
    assert "Het bedrag in artikel 2 klopt niet." in (declined.get("reason") or "")


# The verification code and the public check page.

ANN, BART = "ann.aerts@demo.paraaf.be", "bart.baert@demo.paraaf.be"
PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2, "is_mobile": True, "has_touch": True}
PER_ADDRESS = 10  # PARAAF_CHECK_PER_ADDRESS's default
CODE = re.compile(r"code (\d{4} \d{4} \d{4} \d{4}) \S+ (?:\S+ )?(?:geheim|secret) ([0-9A-Z]{4}-[0-9A-Z]{4})")


async def signed_pdf(system: System, ref: str, title: str, signers: list[str], **fields: Any) -> bytes:
    """Submitted as notula does, signed by each of ``signers`` from their mail: the PDF notula gets back."""
    async with Outcomes(system.amqp_url, "notula.*") as outcomes:
        await system.publish(submission(make_pdf(pages=3), external_ref=ref, title=title, **fields))
        for address in signers:
            mail = (await system.smtp.wait_for_mail(address, about=title))[0]  # type: ignore[attr-defined]
            async with httpx.AsyncClient() as signer:
                assert (await follow_link(signer, mail.signing_link)).status_code == 200
        completed = await outcomes.wait("notula.completed", ref, timeout=60)
    return base64.b64decode(completed["pdf"])


def printed(pdf: bytes, folder: Path, name: str) -> list[tuple[str, str, str]]:
    """(code, secret, page text) as pdftotext reads each page."""
    path = folder / name
    path.write_bytes(pdf)
    found = []
    for page in (1, 2, 3):
        text = subprocess.run(["pdftotext", "-f", str(page), "-l", str(page), str(path), "-"], capture_output=True, text=True).stdout
        match = CODE.search(text)
        assert match is not None, f"no verification code on page {page}:\n{text}"
        found.append((match.group(1), match.group(2), text))
    return found


@pytest.fixture(scope="module")
async def collegebesluit(system: System) -> dict[str, Any]:
    pdf = await signed_pdf(system, "CHECK-1", "Collegebesluit controle", [ANN, BART])
    pages = printed(pdf, system.logs, "check-1.pdf")
    return {"pdf": pdf, "path": system.logs / "check-1.pdf", "code": pages[0][0], "secret": pages[0][1], "pages": pages}


async def test_every_page_carries_the_same_code_and_secret_and_every_signature_still_validates(
    system: System, collegebesluit: dict[str, Any]
) -> None:
    """pdftotext finds the check address, the code and the secret on each of the 3 pages; pdfsig calls both signatures
    valid and trusted; `paraaf verify` prints the code; the database holds the code but never the secret."""
    assert len({(code, secret) for code, secret, _ in collegebesluit["pages"]}) == 1
    assert all(f"{system.public_url}/check" in text for _, _, text in collegebesluit["pages"])
    poppler = pdfsig(collegebesluit["pdf"], await system.root_certificate())
    assert len(poppler) == 2 and all(r.signature_valid and r.certificate_trusted for r in poppler), [r.raw for r in poppler]
    verified = await asyncio.to_thread(system.cli, "verify", str(collegebesluit["path"]))
    assert f"verification code: {collegebesluit['code']}" in verified.stdout and verified.stdout.startswith("OK: 2 signature(s)")
    conn = await asyncpg.connect(system.env["PARAAF_DATABASE_URL"])
    try:
        row = await conn.fetchrow("SELECT * FROM signer.verification_codes WHERE code = $1", collegebesluit["code"].replace(" ", ""))
    finally:
        await conn.close()
    secret = collegebesluit["secret"].replace("-", "").encode()
    assert row is not None and all(secret not in str(value).encode() for value in row.values())


async def _shot(page: Page, folder: Path, name: str) -> None:
    await page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


async def _typed(page: Page, code: str, secret: str) -> None:
    await page.get_by_label("Code (16 digits)").fill(code)
    await page.get_by_label("Secret (8 characters)").fill(secret)
    await page.get_by_role("button", name="Check").click()


async def test_on_a_phone_the_check_page_shows_the_document_hands_out_the_original_and_spots_a_tampered_copy(
    system: System, collegebesluit: dict[str, Any], chromium: Browser
) -> None:
    """A typo is called a typo; a wrong secret gets the same answer as any wrong pair; the right pair (typed in lower
    case, without the dash) shows title, both signers and "Valid"; the download is the PDF notula got; the original
    offered back is recognised and a copy with one byte changed is called tampered, with pyHanko's finding."""
    code, secret, pdf = collegebesluit["code"], collegebesluit["secret"], collegebesluit["pdf"]
    context = await chromium.new_context(
        locale="en-GB", accept_downloads=True, extra_http_headers={"X-Forwarded-For": "192.0.2.10"}, **PHONE
    )  # a citizen of its own (see the rate-limit test), so the attempts counted below are this test's alone
    page = await context.new_page()
    await page.goto(system.public_url + "/check")
    swapped = code[:1] + code[2] + code[1] + code[3:] if code[1] != code[2] else code[:-1] + str((int(code[-1]) + 1) % 10)
    await _typed(page, swapped, secret)
    await expect(page.locator("#error")).to_contain_text("a digit was mistyped or two were swapped")
    await _typed(page, code, "ZZZZ-ZZZZ" if secret != "ZZZZ-ZZZZ" else "YYYY-YYYY")
    await expect(page.locator("#error")).to_have_text(f"No document matches this code and secret. Check both and try again. You can try {PER_ADDRESS - 1} more time(s) in this quarter of an hour.")
    await _shot(page, system.logs, "check-01-wrong-pair")
    await _typed(page, code, secret.lower().replace("-", " "))
    await expect(page.locator("#title")).to_have_text("Collegebesluit controle")
    await expect(page.locator("#status")).to_have_text("Valid: fully signed.")
    await expect(page.locator("#signatures li")).to_have_count(2)
    await expect(page.locator("#signatures")).to_contain_text("Ann Aerts")
    await expect(page.locator("#signatures")).to_contain_text("Bart Baert")
    assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")  # no sideways scrolling on a phone
    await _shot(page, system.logs, "check-02-found")
    async with page.expect_download() as downloading:
        await page.get_by_role("button", name="Download the original signed document (PDF)").click()
    assert Path(await (await downloading.value).path()).read_bytes() == pdf

    await page.get_by_label("PDF file").set_input_files(str(collegebesluit["path"]))
    await page.get_by_role("button", name="Compare").click()
    await expect(page.locator("#comparison")).to_contain_text("This file is the original signed document")
    tampered = system.logs / "check-1-tampered.pdf"
    tampered.write_bytes(flip_signed_byte(pdf))
    await page.get_by_label("PDF file").set_input_files(str(tampered))
    await page.get_by_role("button", name="Compare").click()
    await expect(page.locator("#comparison")).to_contain_text("this file is NOT the original document")
    await expect(page.locator("#problems")).to_contain_text("the signed bytes were changed: the document was tampered with")
    await _shot(page, system.logs, "check-03-tampered")
    await context.close()


async def test_a_confidential_document_is_confirmed_but_never_handed_out_and_the_page_speaks_french(system: System) -> None:
    """For a confidential document the right pair shows its title and signer with a notice, and the download is
    refused (403); a French browser gets the page in French."""
    pdf = await signed_pdf(
        system, "CHECK-2", "Evaluatie vertrouwelijk", [ANN], confidential=True, flow=None,
        steps=[{"action": "sign", "signers": ["person:ann.aerts"]}],
    )
    code, secret, _ = printed(pdf, system.logs, "check-2.pdf")[0]
    async with httpx.AsyncClient(base_url=system.public_url) as citizen:
        french = await citizen.get("/check", headers={"Accept-Language": "fr-BE,fr;q=0.9"})
        assert 'lang="fr"' in french.text and "Vérifier l&#39;authenticité d&#39;un document" in french.text
        shown = await citizen.post("/check", data={"code": code, "secret": secret, "lang": "en"})
        assert shown.status_code == 200 and "Evaluatie vertrouwelijk" in shown.text and "Ann Aerts" in shown.text
        assert "This document is confidential" in shown.text and "/check/document" not in shown.text
        refused = await citizen.post("/check/document", data={"code": code, "secret": secret, "lang": "en"})
        assert refused.status_code == 403 and not refused.content.startswith(b"%PDF")


async def test_too_many_wrong_pairs_lock_out_the_address_even_for_the_right_pair(
    system: System, collegebesluit: dict[str, Any], chromium: Browser
) -> None:
    """After PARAAF_CHECK_PER_ADDRESS (10) wrong pairs from one address in the window, the next attempt, even the right
    pair, is answered 429 "Too many wrong attempts" with until when, and shows no document; other addresses are not
    affected. (Clients come through a local reverse proxy here, which names them in X-Forwarded-For, so this test locks
    out a made-up citizen address and not the tests' own.)"""
    code, secret = collegebesluit["code"], collegebesluit["secret"]
    citizen = {"X-Forwarded-For": "192.0.2.44"}
    async with httpx.AsyncClient(base_url=system.public_url, headers=citizen) as guesser:
        answers = [
            (await guesser.post("/check", data={"code": code, "secret": f"AAAA-AA{n:02d}", "lang": "en"})).status_code
            for n in range(PER_ADDRESS + 1)
        ]
    assert answers == [404] * PER_ADDRESS + [429], answers
    page = await (await chromium.new_context(locale="en-GB", extra_http_headers=citizen, **PHONE)).new_page()
    await page.goto(system.public_url + "/check")
    await _typed(page, code, secret)
    await expect(page.locator("#error")).to_contain_text("Too many wrong attempts from your connection (or in total). Try again after")
    assert await page.locator("#title").count() == 0
    await page.screenshot(path=str(system.logs / "check-04-rate-limited.png"), full_page=True)
    await page.context.close()
    async with httpx.AsyncClient(base_url=system.public_url, headers={"X-Forwarded-For": "192.0.2.45"}) as neighbour:
        assert (await neighbour.post("/check", data={"code": code, "secret": secret, "lang": "en"})).status_code == 200
