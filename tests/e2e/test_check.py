"""The verification code as a citizen meets it, against one running demo city
(every service its own process): the signed PDF the source system got back
carries the code and secret on every page (pdftotext, page by page) and still
validates in pdfsig; `paraaf verify` shows the code; on a phone, Chromium's
/check page answers a right code and secret with the document and its
signatures, hands out the original and tells an offered copy from a tampered
one; a typo, a wrong pair and too many wrong pairs are refused without saying
which part was wrong, and the limit outlives a restart of the signer (it is
counted in PostgreSQL). Screenshots are kept in tests/artifacts/check-page/."""

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
from playwright.async_api import Browser, Page, expect

from tests.conftest import Infra, city_on_fresh_install
from tests.support.pdfs import make_pdf
from tests.support.signing import flip_signed_byte
from tests.support.system import Outcomes, System, follow_link, submission
from tests.support.validate import pdfsig

pytestmark = pytest.mark.e2e

ANN, BART = "ann.aerts@demo.paraaf.be", "bart.baert@demo.paraaf.be"
PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2, "is_mobile": True, "has_touch": True}
PER_ADDRESS = 4
CODE = re.compile(r"code (\d{4} \d{4} \d{4} \d{4}) \S+ (?:\S+ )?(?:geheim|secret) ([0-9A-Z]{4}-[0-9A-Z]{4})")


@pytest.fixture(scope="module")
async def city(infra: Infra, secrets_dir: str) -> AsyncIterator[System]:
    async with city_on_fresh_install(infra, secrets_dir, "check-page", PARAAF_CHECK_PER_ADDRESS=str(PER_ADDRESS)) as system:
        yield system


async def signed_pdf(city: System, ref: str, title: str, signers: list[str], **fields: Any) -> bytes:
    """Submitted as notula does, signed by each of ``signers`` from their mail: the PDF notula gets back."""
    async with Outcomes(city.amqp_url, "notula.*") as outcomes:
        await city.publish(submission(make_pdf(pages=3), external_ref=ref, title=title, **fields))
        for address in signers:
            mail = (await city.smtp.wait_for_mail(address, about=title))[0]  # type: ignore[attr-defined]
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
async def collegebesluit(city: System) -> dict[str, Any]:
    pdf = await signed_pdf(city, "CHECK-1", "Collegebesluit controle", [ANN, BART])
    pages = printed(pdf, city.logs, "check-1.pdf")
    return {"pdf": pdf, "path": city.logs / "check-1.pdf", "code": pages[0][0], "secret": pages[0][1], "pages": pages}


async def test_every_page_carries_the_same_code_and_secret_and_every_signature_still_validates(
    city: System, collegebesluit: dict[str, Any]
) -> None:
    """pdftotext finds the check address, the code and the secret on each of the 3 pages; pdfsig calls both signatures
    valid and trusted; `paraaf verify` prints the code; the database holds the code but never the secret."""
    assert len({(code, secret) for code, secret, _ in collegebesluit["pages"]}) == 1
    assert all(f"{city.public_url}/check" in text for _, _, text in collegebesluit["pages"])
    poppler = pdfsig(collegebesluit["pdf"], await city.root_certificate())
    assert len(poppler) == 2 and all(r.signature_valid and r.certificate_trusted for r in poppler), [r.raw for r in poppler]
    verified = await asyncio.to_thread(city.cli, "verify", str(collegebesluit["path"]))
    assert f"verification code: {collegebesluit['code']}" in verified.stdout and verified.stdout.startswith("OK: 2 signature(s)")
    conn = await asyncpg.connect(city.env["PARAAF_DATABASE_URL"])
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
    city: System, collegebesluit: dict[str, Any], chromium: Browser
) -> None:
    """A typo is called a typo; a wrong secret gets the same answer as any wrong pair; the right pair (typed in lower
    case, without the dash) shows title, both signers and "Valid"; the download is the PDF notula got; the original
    offered back is recognised and a copy with one byte changed is called tampered, with pyHanko's finding."""
    code, secret, pdf = collegebesluit["code"], collegebesluit["secret"], collegebesluit["pdf"]
    context = await chromium.new_context(locale="en-GB", accept_downloads=True, **PHONE)
    page = await context.new_page()
    await page.goto(city.public_url + "/check")
    swapped = code[:1] + code[2] + code[1] + code[3:] if code[1] != code[2] else code[:-1] + str((int(code[-1]) + 1) % 10)
    await _typed(page, swapped, secret)
    await expect(page.locator("#error")).to_contain_text("a digit was mistyped or two were swapped")
    await _typed(page, code, "ZZZZ-ZZZZ" if secret != "ZZZZ-ZZZZ" else "YYYY-YYYY")
    await expect(page.locator("#error")).to_have_text(f"No document matches this code and secret. Check both and try again. You can try {PER_ADDRESS - 1} more time(s) in this quarter of an hour.")
    await _shot(page, city.logs, "01-wrong-pair")
    await _typed(page, code, secret.lower().replace("-", " "))
    await expect(page.locator("#title")).to_have_text("Collegebesluit controle")
    await expect(page.locator("#status")).to_have_text("Valid: fully signed.")
    await expect(page.locator("#signatures li")).to_have_count(2)
    await expect(page.locator("#signatures")).to_contain_text("Ann Aerts")
    await expect(page.locator("#signatures")).to_contain_text("Bart Baert")
    assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")  # no sideways scrolling on a phone
    await _shot(page, city.logs, "02-found")
    async with page.expect_download() as downloading:
        await page.get_by_role("button", name="Download the original signed document (PDF)").click()
    assert Path(await (await downloading.value).path()).read_bytes() == pdf

    await page.get_by_label("PDF file").set_input_files(str(collegebesluit["path"]))
    await page.get_by_role("button", name="Compare").click()
    await expect(page.locator("#comparison")).to_contain_text("This file is the original signed document")
    tampered = city.logs / "check-1-tampered.pdf"
    tampered.write_bytes(flip_signed_byte(pdf))
    await page.get_by_label("PDF file").set_input_files(str(tampered))
    await page.get_by_role("button", name="Compare").click()
    await expect(page.locator("#comparison")).to_contain_text("this file is NOT the original document")
    await expect(page.locator("#problems")).to_contain_text("the signed bytes were changed: the document was tampered with")
    await _shot(page, city.logs, "03-tampered")
    await context.close()


async def test_a_confidential_document_is_confirmed_but_never_handed_out_and_the_page_speaks_french(city: System) -> None:
    """For a confidential document the right pair shows its title and signer with a notice, and the download is
    refused (403); a French browser gets the page in French."""
    pdf = await signed_pdf(
        city, "CHECK-2", "Evaluatie vertrouwelijk", [ANN], confidential=True, flow=None,
        steps=[{"action": "sign", "signers": ["person:ann.aerts"]}],
    )
    code, secret, _ = printed(pdf, city.logs, "check-2.pdf")[0]
    async with httpx.AsyncClient(base_url=city.public_url) as citizen:
        french = await citizen.get("/check", headers={"Accept-Language": "fr-BE,fr;q=0.9"})
        assert 'lang="fr"' in french.text and "Vérifier l&#39;authenticité d&#39;un document" in french.text
        shown = await citizen.post("/check", data={"code": code, "secret": secret, "lang": "en"})
        assert shown.status_code == 200 and "Evaluatie vertrouwelijk" in shown.text and "Ann Aerts" in shown.text
        assert "This document is confidential" in shown.text and "/check/document" not in shown.text
        refused = await citizen.post("/check/document", data={"code": code, "secret": secret, "lang": "en"})
        assert refused.status_code == 403 and not refused.content.startswith(b"%PDF")


async def test_too_many_wrong_pairs_lock_out_the_address_even_for_the_right_pair_and_across_a_signer_restart(
    city: System, collegebesluit: dict[str, Any], chromium: Browser
) -> None:
    """After PARAAF_CHECK_PER_ADDRESS wrong pairs from one address in the window, the next attempt (right or wrong)
    is answered 429 "Too many wrong attempts" and says until when; a restarted signer process still refuses."""
    code, secret = collegebesluit["code"], collegebesluit["secret"]
    async with httpx.AsyncClient(base_url=city.public_url) as guesser:
        answers = [(await guesser.post("/check", data={"code": code, "secret": f"AAAA-AAA{n}", "lang": "en"})).status_code for n in range(PER_ADDRESS + 1)]
    assert answers[0] == 404 and answers[-1] == 429 and set(answers) == {404, 429}, answers
    city.stop_service("signer")
    city.start_service("signer")
    await city.wait_healthy(["signer"])
    page = await (await chromium.new_context(locale="en-GB", **PHONE)).new_page()
    await page.goto(city.public_url + "/check")
    await _typed(page, code, secret)
    await expect(page.locator("#error")).to_contain_text("Too many wrong attempts from your connection (or in total). Try again after")
    assert await page.locator("#title").count() == 0
    await _shot(page, city.logs, "04-rate-limited")
    await page.context.close()
