"""The operators' pages as an operator uses them, against one running demo city
for the module (every service its own process): Iris Ilegems (operator) finds
a document with the filters of `paraaf documents`, opens its timeline — every
step from the audit log in order, as `paraaf trail` tells it — and watches
the live view, where a new event appears within 2 s without a reload; the
live stream resumes from Last-Event-ID after a reconnect without a gap or a
repeat. Screenshots are kept in tests/artifacts/ops-pages/."""

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest
from playwright.async_api import Browser, Page, expect

from tests.conftest import Infra, city_on_fresh_install
from tests.support.browser import screenshots, seconds_to_live_row, watch_live_rows
from tests.support.pdfs import make_pdf
from tests.support.portal import sign_in_by_mail, sign_in_link_in
from tests.support.smtp import SmtpServer
from tests.support.system import System, follow_link, submission
from tests.support.waiting import eventually

pytestmark = pytest.mark.e2e

DESKTOP = {"viewport": {"width": 1280, "height": 900}}
IRIS, ANN, BART = "iris.ilegems@demo.paraaf.be", "ann.aerts@demo.paraaf.be", "bart.baert@demo.paraaf.be"


@pytest.fixture(scope="module")
async def city(infra: Infra, secrets_dir: str) -> AsyncIterator[System]:
    async with city_on_fresh_install(infra, secrets_dir, "ops-pages") as system:
        yield system


@pytest.fixture(scope="module")
async def iris(city: System) -> AsyncIterator[httpx.AsyncClient]:
    """The operator, signed in over HTTP with the link mailed to her."""
    client = await sign_in_by_mail(city.public_url, city.smtp, IRIS)  # type: ignore[attr-defined]
    yield client
    await client.aclose()


async def log_of(system: System, document_id: str) -> list[tuple[int, str]]:
    """(seq, routing key) of the document's audit-log entries, as the database has them."""
    conn = await asyncpg.connect(system.env["PARAAF_DATABASE_URL"])
    try:
        rows = await conn.fetch("SELECT seq, routing_key FROM audit.log WHERE document_id = $1::uuid ORDER BY seq", document_id)
    finally:
        await conn.close()
    return [(r["seq"], r["routing_key"]) for r in rows]


async def logged(system: System, document_id: str, routing_key: str, count: int = 1) -> list[tuple[int, str]]:
    async def enough() -> list[tuple[int, str]] | None:
        entries = await log_of(system, document_id)
        return entries if sum(1 for _, key in entries if key == routing_key) >= count else None

    return await eventually(enough, f"{count} x {routing_key} of {document_id} in the audit log")


async def settled(system: System, document_id: str, routing_key: str) -> list[tuple[int, str]]:
    """The document's entries once ``routing_key`` is among them and nothing more came for 1.5 s (mails after it)."""
    entries = await logged(system, document_id, routing_key)
    while True:
        await asyncio.sleep(1.5)
        if (now := await log_of(system, document_id)) == entries:
            return entries
        entries = now


async def submitted(system: System, ref: str, **fields: Any) -> str:
    """Publish a submission as notula does; its document id once the router asked the first signer."""
    await system.publish(submission(make_pdf(), external_ref=ref, **fields))

    async def document_id() -> str | None:
        conn = await asyncpg.connect(system.env["PARAAF_DATABASE_URL"])
        try:
            found = await conn.fetchval(
                "SELECT d.document_id::text FROM intake.documents d JOIN router.requests r USING (document_id)"
                " WHERE d.source = 'notula' AND d.external_ref = $1 LIMIT 1", ref,
            )
        finally:
            await conn.close()
        return found

    return await eventually(document_id, f"{ref} routed")


async def sign(system: System, to: str, title: str) -> None:
    smtp: SmtpServer = system.smtp  # type: ignore[attr-defined]

    async def mail() -> Any:
        return next((m for m in smtp.received_by(to) if title in m.subject), None)

    found = await eventually(mail, f"a mail to {to} about {title}")
    async with httpx.AsyncClient() as signer:
        assert (await follow_link(signer, found.signing_link)).status_code == 200


async def test_the_timeline_of_a_signed_document_lists_every_step_in_order_as_paraaf_trail_does(
    city: System, iris: httpx.AsyncClient, chromium: Browser
) -> None:
    """Found waiting on Ann Aerts with the page's filters; once both signed, found completed; its timeline lists
    submitted → requested → mail sent → signed → … → completed, step for step what `paraaf trail --json` prints."""
    document_id = await submitted(city, "OPS-WEB-1", title="Collegebesluit webtijdlijn")
    waiting = await iris.get("/p/ops/documents", params={"status": "waiting", "waiting_on": "ann.aerts", "ref": "OPS-WEB-1"})
    assert waiting.status_code == 200 and document_id in waiting.text and "Ann Aerts" in waiting.text
    await sign(city, ANN, "Collegebesluit webtijdlijn")
    await sign(city, BART, "Collegebesluit webtijdlijn")
    await settled(city, document_id, "document.completed")
    done = await iris.get("/p/ops/documents", params={"status": "completed", "source": "notula"})
    assert document_id in done.text
    assert document_id not in (await iris.get("/p/ops/documents", params={"status": "waiting"})).text
    refused = await iris.get("/p/ops/documents", params={"older_than": "3 days"})
    assert "12h, 3d, 2w" in refused.text

    page = await (await chromium.new_context(locale="en-GB", **DESKTOP)).new_page()
    await _browser_sign_in(page, city)
    await page.get_by_role("link", name="Operations").click()
    await page.get_by_label("Status").select_option("completed")
    await page.get_by_label("Reference").fill("OPS-WEB-1")
    await page.get_by_role("button", name="Show").click()
    await expect(page.locator("#documents")).to_contain_text("Collegebesluit webtijdlijn")
    await screenshots(page, city.logs, "01-documents")
    await page.get_by_role("link", name=document_id[:8]).click()
    await expect(page.locator("#title")).to_have_text("Collegebesluit webtijdlijn")
    await screenshots(page, city.logs, "02-timeline")
    shown = [
        (await item.get_attribute("data-event"), (await item.locator(".what").inner_text()).strip())
        for item in await page.locator("#timeline li").all()
    ]
    trail = json.loads((await asyncio.to_thread(city.cli, "trail", document_id, "--json")).stdout)
    assert shown == [(step["event"], step["what"]) for step in trail["steps"]]
    assert [key for _, key in await log_of(city, document_id)] == [event for event, _ in shown]
    keys = [event for event, _ in shown]
    expected = ["document.submitted", "signature.requested", "notification.sent", "signature.signed", "document.completed"]
    assert [keys.index(key) for key in expected] == sorted(keys.index(key) for key in expected), keys
    assert ("signature.requested", "signature requested of Ann Aerts, step 1/2") in shown
    await page.context.close()


async def _browser_sign_in(page: Page, system: System) -> None:
    """Iris asks for a sign-in link, opens it from her mail and presses Sign in."""
    smtp: SmtpServer = system.smtp  # type: ignore[attr-defined]
    already = len(smtp.received_by(IRIS))
    await page.goto(system.public_url + "/p/sign-in")
    await page.get_by_label("Your e-mail address").fill(IRIS)
    await page.get_by_role("button", name="Send me a sign-in link").click()
    mail = (await smtp.wait_for_mail(IRIS, count=already + 1))[-1]
    await page.goto(sign_in_link_in(mail.text))
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.locator("#who")).to_contain_text("Iris Ilegems")


async def test_a_new_event_appears_in_the_live_view_within_two_seconds(city: System, chromium: Browser) -> None:
    """With the live page open (no reload), the document.submitted of a document published now is on the page
    within 2 s of its entry's commit to the audit log (the browser's clock against the database's, one machine),
    later with the document's title; and the page runs under a CSP that allows only its own script."""
    page = await (await chromium.new_context(locale="en-GB", **DESKTOP)).new_page()
    await _browser_sign_in(page, city)
    opened = await page.goto(city.public_url + "/p/ops/live")
    assert opened is not None and "script-src 'self'" in opened.headers["content-security-policy"]
    await expect(page.locator("#live-status")).to_have_text(re.compile("Connected"))
    await watch_live_rows(page)
    await city.publish(submission(make_pdf(), external_ref="OPS-LIVE-1", title="Collegebesluit live"))
    took = await seconds_to_live_row(page, city.env["PARAAF_DATABASE_URL"], "OPS-LIVE-1")
    print(f"\nlive view: OPS-LIVE-1 on the page {took:.3f} s after it was appended")
    assert 0 < took < 2.0
    await expect(page.locator("#live")).to_contain_text("Collegebesluit live")  # once the router took it on
    await screenshots(page, city.logs, "03-live")
    await page.context.close()


class Stream:
    """/p/ops/events read as EventSource reads it: events (id and data) until the caller has enough."""

    def __init__(self, client: httpx.AsyncClient, params: dict[str, str], last_event_id: int | None = None) -> None:
        headers = {"Accept": "text/event-stream"} | ({"Last-Event-ID": str(last_event_id)} if last_event_id is not None else {})
        self._request = client.stream("GET", "/p/ops/events", params=params, headers=headers, timeout=httpx.Timeout(60))

    async def __aenter__(self) -> "Stream":
        self.response = await self._request.__aenter__()
        assert self.response.status_code == 200 and self.response.headers["content-type"].startswith("text/event-stream")
        self._lines = self.response.aiter_lines()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._request.__aexit__(*exc)

    async def event(self, timeout: float = 30.0) -> tuple[str, dict[str, Any] | str]:
        """The next event: (its id, or its type when it is not a log entry; its data)."""
        fields: dict[str, str] = {}
        async with asyncio.timeout(timeout):
            async for line in self._lines:
                if line == "" and "data" in fields:
                    data = fields["data"]
                    return (fields["id"], json.loads(data)) if "id" in fields else (fields.get("event", ""), data)
                if line == "" or line.startswith(":"):
                    fields = {}
                    continue
                name, _, value = line.partition(":")
                fields[name] = value[1:] if value.startswith(" ") else value
        raise AssertionError("the stream ended")

    async def until(self, routing_key: str) -> list[dict[str, Any]]:
        seen: list[dict[str, Any]] = []
        while not seen or seen[-1]["type"] != routing_key:
            _, data = await self.event()
            assert isinstance(data, dict), data
            seen.append(data)
        return seen


async def test_a_reconnect_with_last_event_id_gets_exactly_the_events_missed(city: System, iris: httpx.AsyncClient) -> None:
    """Read a document's events up to its first mail, disconnect; Ann signs meanwhile; reconnecting with the last id
    seen brings exactly the entries logged since, in order, none twice; a fresh connection without it starts
    with the latest entries instead."""
    document_id = await submitted(city, "OPS-RECONNECT", title="Collegebesluit herverbinden")
    await logged(city, document_id, "notification.sent")
    params = {"document": document_id}
    async with Stream(iris, params) as first:
        before = await first.until("notification.sent")
    last = before[-1]["seq"]
    assert [e["seq"] for e in before] == [seq for seq, _ in await log_of(city, document_id) if seq <= last]

    await sign(city, ANN, "Collegebesluit herverbinden")
    missed = [seq for seq, _ in await logged(city, document_id, "notification.sent", count=2) if seq > last]
    async with Stream(iris, params, last_event_id=last) as again:
        resumed = [await again.event() for _ in missed]
    assert [int(event_id) for event_id, _ in resumed] == missed
    assert [data["seq"] for _, data in resumed] == missed  # type: ignore[index]
    assert "signature.signed" in [data["type"] for _, data in resumed]  # type: ignore[index]

    async with Stream(iris, {"document": document_id, "type": "signature.*"}) as typed:
        signature_events = await typed.until("signature.signed")
    assert {e["type"] for e in signature_events} <= {"signature.requested", "signature.signed"}


async def test_stopping_the_signer_ends_open_streams_instead_of_waiting_on_them(city: System, iris: httpx.AsyncClient) -> None:
    """With a live stream open, SIGTERM stops the signer cleanly (exit 0) well within uvicorn's 5 s grace for open
    requests: the stream ends at once. Started again, the stream goes on from Last-Event-ID."""
    async with Stream(iris, {}) as watching:
        _, first = await watching.event()
        started = time.monotonic()
        code = await asyncio.to_thread(city.stop_service, "signer")
        took = time.monotonic() - started
        with pytest.raises((AssertionError, httpx.HTTPError)):
            while True:
                await watching.event(timeout=10)
    print(f"\nsigner stopped in {took:.2f} s with a live stream open")
    assert code == 0 and took < 4.0
    city.start_service("signer")
    await city.wait_healthy(["signer"])
    assert isinstance(first, dict)
    async with Stream(iris, {}, last_event_id=first["seq"]) as again:
        event_id, _ = await again.event()
    assert int(event_id) == first["seq"] + 1
