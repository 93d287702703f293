"""The portal as people use it, every service its own OS process and the city's
identity provider a real OIDC provider on the loopback: a department head signs
in, uploads a confidential performance review with its flow, the signer signs
it from "To sign", the department head downloads the signed PDF from "Submitted
by me" — and a colleague in the same department never sees it. Screenshots at
phone and desktop width are kept in tests/artifacts/<test>/."""

import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, Page, expect

from tests.support.oidc import AUTHORIZE_BUTTON, SUBJECT_FIELD, OidcProvider
from tests.support.pdfs import make_pdf
from tests.support.smtp import SmtpServer
from tests.support.system import System, demo_city, follow_link
from tests.support.validate import pdfsig

pytestmark = pytest.mark.e2e

PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2, "is_mobile": True, "has_touch": True}
DESKTOP = {"viewport": {"width": 1280, "height": 900}}
EMAIL = "{}@demo.paraaf.be"


@pytest.fixture
async def system(
    request: pytest.FixtureRequest, database_url: str, amqp_url: str, smtp_server: SmtpServer, secrets_dir: str,
    oidc_provider: OidcProvider,
) -> AsyncIterator[System]:
    oidc = {
        "PARAAF_OIDC_ISSUER": oidc_provider.issuer, "PARAAF_OIDC_CLIENT_ID": oidc_provider.client_id,
        "PARAAF_OIDC_CLIENT_SECRET": oidc_provider.client_secret,
    }
    async with demo_city(
        request.node.name, database_url=database_url, amqp_url=amqp_url, smtp=smtp_server, secrets_dir=secrets_dir, **oidc
    ) as system:
        yield system


async def _signed_in(browser: Browser, system: System, provider: OidcProvider, person: str, device: dict) -> Page:
    """A person opens the portal, is sent to the city's provider, signs in there and lands on "To sign"."""
    async with httpx.AsyncClient() as client:
        await provider.add_user(client, sub=person, email=EMAIL.format(person), email_verified=True)
    page = await (await browser.new_context(locale="nl-BE", **device)).new_page()
    await page.goto(system.public_url + "/p/")
    await page.get_by_role("link", name="Aanmelden met uw account van de stad").click()
    await page.locator(SUBJECT_FIELD).fill(person)
    await page.locator(AUTHORIZE_BUTTON).click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Te tekenen")
    return page


async def _shots(page: Page, folder: Path, name: str) -> None:
    """The page at phone and at desktop width, whole."""
    size = page.viewport_size
    for width, height, label in ((390, 844, "phone"), (1280, 900, "desktop")):
        await page.set_viewport_size({"width": width, "height": height})
        await page.screenshot(path=str(folder / f"{name}-{label}.png"), full_page=True)
    if size:
        await page.set_viewport_size(size)


async def _upload_review(page: Page, pdf_path: Path, shots: Path) -> str:
    """The department head submits the review with the evaluation flow, marked confidential; returns its page's URL."""
    await page.get_by_role("link", name="Document indienen").click()
    await page.get_by_label("Het document (PDF").set_input_files(str(pdf_path))
    await page.get_by_label("Titel").fill("Evaluatieverslag Karel Claes 2026")
    await page.get_by_label("Ondertekenflow").select_option("evaluatieverslag")
    await page.get_by_label("Vertrouwelijk: enkel u en de ondertekenaars zien het").check()
    await _shots(page, shots, "01-upload")
    await page.get_by_role("button", name="Indienen").click()
    await expect(page).to_have_url(re.compile(r"/p/documents/[0-9a-f-]{36}$"), timeout=60_000)
    await expect(page.locator("#title")).to_contain_text("Evaluatieverslag Karel Claes 2026")
    await expect(page.get_by_text("Wacht op Pieter Peeters")).to_be_visible()
    await _shots(page, shots, "02-document-page")
    return page.url


async def test_a_confidential_review_goes_from_upload_to_signed_download_and_a_colleague_never_sees_it(
    system: System, oidc_provider: OidcProvider, chromium: Browser, smtp_server: SmtpServer, tmp_path: Path
) -> None:
    """Sign-in through the loopback OIDC provider → upload (flow, confidential) → the HR officer signs from "To sign"
    → the director signs from her mail → the department head downloads the signed PDF (both signatures valid in
    pdfsig); the colleague in the same department finds it in no list, and its page and PDF answer 404."""
    shots = system.logs
    pdf_path = tmp_path / "evaluatie-karel.pdf"
    pdf_path.write_bytes(make_pdf(pages=2))
    head = await _signed_in(chromium, system, oidc_provider, "hilde.hendrickx", DESKTOP)
    document_url = await _upload_review(head, pdf_path, shots)

    hr = await _signed_in(chromium, system, oidc_provider, "pieter.peeters", PHONE)
    await expect(hr.locator("#to-sign")).to_contain_text("Evaluatieverslag Karel Claes 2026")
    await _shots(hr, shots, "03-to-sign")
    await hr.get_by_role("link", name="Lezen en tekenen").click()
    await expect(hr.get_by_role("heading", level=1)).to_have_text("Document ondertekenen")
    await hr.get_by_role("button", name="Ondertekenen").click()
    await expect(hr.get_by_text("U hebt “Evaluatieverslag Karel Claes 2026” ondertekend")).to_be_visible()

    director_mail = (await smtp_server.wait_for_mail(EMAIL.format("ann.aerts")))[0]
    async with httpx.AsyncClient() as client:
        assert (await follow_link(client, director_mail.signing_link)).status_code == 200

    await head.get_by_role("link", name="Door mij ingediend").click()
    await expect(head.locator("#documents")).to_contain_text("Ondertekend", timeout=60_000)
    await _shots(head, shots, "04-submitted-by-me")
    await head.get_by_role("link", name="Evaluatieverslag Karel Claes 2026").click()
    async with head.expect_download() as download_info:
        await head.get_by_role("link", name="Document downloaden (PDF)").click()
    signed = Path(await (await download_info.value).path()).read_bytes()
    poppler = pdfsig(signed, await system.root_certificate())
    assert [r.signer for r in poppler] == ["Pieter Peeters", "Ann Aerts"]
    assert all(r.signature_valid and r.certificate_trusted for r in poppler), [r.raw for r in poppler]

    colleague = await _signed_in(chromium, system, oidc_provider, "karel.claes", PHONE)
    for listing in ("/p/to-sign", "/p/submitted", "/p/signed", "/p/department", "/p/search?q=Evaluatie"):
        await colleague.goto(system.public_url + listing)
        assert "Evaluatieverslag" not in await colleague.content(), listing
    await _shots(colleague, shots, "05-colleague-department")
    for url in (document_url, document_url + "/document.pdf"):
        answer = await colleague.request.get(url)
        assert answer.status == 404, (url, answer.status)
        assert "Evaluatieverslag" not in await answer.text()
