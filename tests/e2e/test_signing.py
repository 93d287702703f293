"""Signing as people do it, every service its own OS process: five signers one
after the other with both validators checking the PDF after each signature,
and a phone-sized Chromium that signs or declines from the emailed link.

The tests share one running city (starting one costs seconds): each submits its own document with its own title and
external_ref and finds its mails by that title, so each passes alone and in any order."""

import base64
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Page, async_playwright, expect

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
