"""Bulk signing as a signer does it, in July (the mayor away all month), against
one demo city with every service its own process and a real time-stamping
authority: Sofie Smet, alderman and the mayor's first substitute, has 40
decisions waiting (her own and, for Bart Baert, the mayor's), ticks 39 of them
in Chromium, confirms once, and follows the progress bar to the summary. One of
the 39 is withdrawn by an operator while the run is under way: the TSA holds
every signature in flight until the withdrawal has reached the signer, so the
run meets a withdrawn document for certain, not by timing luck. Screenshots at
phone and desktop width are kept in tests/artifacts/bulk-signing/."""

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from uuid import UUID

import asyncpg
import httpx
import pytest
from playwright.async_api import Browser, Page, expect

from shared import blobs
from tests.conftest import Infra, city_on_fresh_install
from tests.support.pdfs import make_pdf
from tests.support.portal import sign_in_link_in
from tests.support.smtp import SmtpServer
from tests.support.system import System, submission
from tests.support.tsa import TimestampAuthority
from tests.support.validate import pdfsig_all, pyhanko_validate
from tests.support.waiting import eventually

pytestmark = pytest.mark.e2e

SOFIE = "sofie.smet@demo.paraaf.be"
TENTH_OF_JULY = "2026-07-10T09:00:00+02:00"
OWN, FOR_THE_MAYOR = 26, 14


@pytest.fixture(scope="module")
async def city(infra: Infra, secrets_dir: str, tsa: TimestampAuthority) -> AsyncIterator[System]:
    async with city_on_fresh_install(infra, secrets_dir, "bulk-signing", PARAAF_CLOCK_START=TENTH_OF_JULY, PARAAF_TSA_URL=tsa.url) as system:
        yield system


async def query(system: System, sql: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(system.env["PARAAF_DATABASE_URL"])
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


async def forty_waiting(system: System) -> dict[str, str]:
    """40 submissions from notula: Sofie's own (two submitters) and the mayor's; title -> document id once all wait for her."""
    submissions = [
        ({"steps": [{"action": "sign", "signers": ["person:sofie.smet"]}]}, f"Schepenbesluit {n:02d}",
         "elen.elaut" if n % 2 else "hilde.hendrickx")
        for n in range(1, OWN + 1)
    ] + [
        ({"steps": [{"action": "sign", "signers": ["role:burgemeester"]}]}, f"Burgemeestersbesluit {n:02d}", "elen.elaut")
        for n in range(1, FOR_THE_MAYOR + 1)
    ]
    pdf = make_pdf(pages=2)
    bodies = [
        {k: v for k, v in submission(pdf, external_ref=f"BULK-{n:02d}", title=title, submitted_by=submitter, **flow).items() if k != "flow"}
        for n, (flow, title, submitter) in enumerate(submissions)
    ]
    await system.publish_many(bodies)

    async def all_waiting() -> dict[str, str] | None:
        rows = await query(
            system, "SELECT r.title, r.document_id::text AS id FROM signer.requests r JOIN signer.documents d USING (document_id)"
            " WHERE r.signer->>'id' = 'sofie.smet' AND r.status = 'pending' AND d.status = 'active'",
        )
        return {r["title"]: r["id"] for r in rows} if len(rows) == OWN + FOR_THE_MAYOR else None

    return await eventually(all_waiting, "40 requests waiting for Sofie Smet", timeout=120)


async def signed_in(browser: Browser, system: System, device: dict[str, Any]) -> Page:
    """Sofie asks for a sign-in link on the portal, opens it from her mail and lands on "To sign"."""
    smtp: SmtpServer = system.smtp  # type: ignore[attr-defined]
    page = await (await browser.new_context(locale="nl-BE", **device)).new_page()
    already = len([m for m in smtp.received_by(SOFIE) if "/p/sign-in/" in m.text])
    await page.goto(system.public_url + "/p/sign-in")
    await page.get_by_label("Uw e-mailadres").fill(SOFIE)
    await page.get_by_role("button", name="Stuur mij een aanmeldlink").click()

    async def link() -> str | None:
        mails = [m for m in smtp.received_by(SOFIE) if "/p/sign-in/" in m.text]
        return sign_in_link_in(mails[-1].text) if len(mails) > already else None

    await page.goto(await eventually(link, "a sign-in link mailed to Sofie"))
    await page.get_by_role("button", name="Aanmelden").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Te tekenen")
    await expect(page.locator("#empty")).to_be_visible()  # nothing waits for her yet
    return page


async def shots(page: Page, folder: Path, name: str) -> None:
    """The page whole, at desktop and at phone width."""
    size = page.viewport_size
    for width, height, label in ((1280, 900, "desktop"), (390, 844, "phone")):
        await page.set_viewport_size({"width": width, "height": height})
        await page.screenshot(path=str(folder / f"{name}-{label}.png"), full_page=True)
    if size:
        await page.set_viewport_size(size)


async def latest_pdf(system: System, document_id: str) -> bytes:
    conn = await asyncpg.connect(system.env["PARAAF_DATABASE_URL"])
    try:
        digests = await blobs.version_digests(conn, UUID(document_id), "default")
        return await blobs.get_blob(conn, digests[-1])
    finally:
        await conn.close()


async def test_a_substitute_signs_38_of_40_waiting_decisions_in_one_go_and_the_one_withdrawn_meanwhile_is_named(
    city: System, tsa: TimestampAuthority, chromium: Browser
) -> None:
    """40 wait (14 for the mayor); she ticks 39 after a look at a first page, confirms once; while the run is held
    at the TSA an operator withdraws the last one; the progress bar moves, the summary says 38 of 39 signed and
    names the withdrawn one; all 38 PDFs are valid (pyHanko and pdfsig), each by its own signature and event."""
    page = await signed_in(chromium, city, {"viewport": {"width": 1280, "height": 900}})  # before her 40 mails queue up
    documents = await forty_waiting(city)
    await page.reload()
    listed = page.locator("#to-sign li[data-request]")
    await expect(listed).to_have_count(40)
    await expect(page.get_by_role("heading", name="Zonder vaste flow · ingediend door Elen Elaut")).to_be_visible()
    await expect(page.get_by_role("heading", name="Zonder vaste flow · ingediend door Hilde Hendrickx")).to_be_visible()
    await expect(page.locator("#to-sign li", has_text="vervanger van Bart Baert")).to_have_count(FOR_THE_MAYOR)

    first = listed.nth(0)
    await first.get_by_text("Eerste pagina bekijken").click()
    picture = first.get_by_role("img")
    await expect(picture).to_be_visible()
    await page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=await picture.element_handle())
    await shots(page, city.logs, "01-to-sign")

    titles = [t.strip() for t in await listed.locator("a.title").all_inner_texts()]
    skipped, withdrawn = titles[0], titles[-1]
    for n in range(1, 40):
        await listed.nth(n).get_by_role("checkbox").check()
    await page.get_by_role("button", name="Selectie tekenen").click()
    await expect(page.locator("#chosen li")).to_have_count(39)
    await shots(page, city.logs, "02-confirm")

    tsa.hold()
    try:
        await page.get_by_role("button", name="39 documenten ondertekenen").click()
        await eventually(lambda: _true(tsa.held > 0), "a signature of the run waiting at the TSA")
        async with httpx.AsyncClient() as client:
            done = await client.post(
                city.url("router", f"/documents/{documents[withdrawn]}/withdraw"), json={"reason": "verkeerde bijlage"},
                headers=city.operator_headers(),
            )
        assert done.status_code == 202, done.text

        async def seen_by_signer() -> bool:
            rows = await query(city, "SELECT status FROM signer.documents WHERE document_id = $1::uuid", documents[withdrawn])
            return rows[0]["status"] == "withdrawn"

        await eventually(seen_by_signer, "the signer knowing the document is withdrawn")
        progress = page.locator("#bulk-progress")
        await expect(progress).to_have_attribute("max", "39")
        assert int(await progress.get_attribute("value") or 0) < 39  # the run is still under way
        await shots(page, city.logs, "03-progress")
    finally:
        tsa.release()

    summary = page.locator("#bulk-summary")
    await expect(summary).to_contain_text("Klaar: 38 van 39 ondertekend.", timeout=120_000)
    failed = page.locator("#bulk-failed li")
    await expect(failed).to_have_count(1)
    await expect(failed).to_contain_text(withdrawn)
    await expect(failed).to_contain_text("De indiener heeft dit document ingetrokken")
    await expect(page.locator("#bulk-progress")).to_have_attribute("value", "39")
    await shots(page, city.logs, "04-summary")
    csp = (await page.request.get(page.url)).headers["content-security-policy"]
    assert "script-src 'self'" in csp and "default-src 'none'" in csp  # the progress script is Paraaf's own file, no CDN

    signed_titles = [t for t in titles if t not in (skipped, withdrawn)]
    events = [
        e for e in await city.audit_events("signature.signed")
        if e["signer"]["id"] == "sofie.smet"
    ]
    assert sorted(str(e["correlation_id"]) for e in events) == sorted(documents[t] for t in signed_titles)
    on_behalf = [e for e in events if e.get("on_behalf_of")]
    assert {e["on_behalf_of"]["id"] for e in on_behalf} == {"bart.baert"}
    assert len(on_behalf) == sum(1 for t in signed_titles if t.startswith("Burgemeestersbesluit"))
    still = await query(city, "SELECT status FROM signer.requests WHERE document_id = $1::uuid", documents[skipped])
    assert [r["status"] for r in still] == ["pending"], "the one she did not tick still waits"

    root = await city.root_certificate()
    pdfs = [await latest_pdf(city, documents[t]) for t in signed_titles]
    for title, pdf in zip(signed_titles, pdfs, strict=True):
        reports = await pyhanko_validate(pdf, root)
        assert [(r.signer, r.intact, r.trusted) for r in reports] == [("Sofie Smet", True, True)], title
    for title, poppler in zip(signed_titles, pdfsig_all(pdfs, root), strict=True):
        assert [(r.signer, r.signature_valid, r.certificate_trusted) for r in poppler] == [("Sofie Smet", True, True)], (
            title, [r.raw for r in poppler])


async def _true(value: bool) -> bool | None:
    return True if value else None
