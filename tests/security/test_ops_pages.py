"""Attacks on the operators' pages and their live stream (/p/ops/...) in the running
city: a colleague who is no operator, and a visitor with no session, ask for
them (with a Last-Event-ID too); an operator who neither submitted nor signs a
confidential document looks for its title in every page and in the stream; a
stream outlives its session. Each is refused or shows nothing it should not."""

import asyncio
import uuid
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest

from tests.security.conftest import attempted, settle
from tests.support.pdfs import make_pdf
from tests.support.portal import csrf_on, sign_in_by_mail
from tests.support.system import Outcomes, System, submission

EMAIL = "{}@demo.paraaf.be"
SECRET, OPEN = "Evaluatie Plopsa Zjefke", "Collegebesluit Tralala"
PAGES = ("/p/ops/documents", "/p/ops/documents?status=waiting", "/p/ops/live")


async def _fetchval(city: System, query: str, *args: object) -> object:
    conn = await asyncpg.connect(city.env["PARAAF_DATABASE_URL"])
    try:
        return await conn.fetchval(query, *args)
    finally:
        await conn.close()


async def _submitted(city: System, outcomes: Outcomes, title: str, **fields: object) -> str:
    """A document notula sends (submitted by Elen, signed by Ann then Bart); its id once its first mail is logged."""
    ref = f"OPSSEC-{uuid.uuid4().hex[:8]}"
    await city.publish(submission(make_pdf(pages=1), external_ref=ref, title=title, **fields))
    document_id = (await outcomes.wait("notula.accepted", ref))["document_id"]
    for _ in range(300):
        if await _fetchval(city, "SELECT 1 FROM audit.log WHERE document_id = $1 AND routing_key = 'notification.sent'",
                           uuid.UUID(document_id)):
            return document_id
        await settle(0.1)
    raise AssertionError(f"no mail logged for {ref}")


async def _latest_seq(city: System) -> int:
    return int(await _fetchval(city, "SELECT coalesce(max(seq), 0) FROM audit.log"))  # type: ignore[arg-type]


@pytest.fixture(scope="module")
async def iris(city: System) -> AsyncIterator[httpx.AsyncClient]:
    client = await sign_in_by_mail(city.public_url, city.smtp, EMAIL.format("iris.ilegems"))  # type: ignore[attr-defined]
    yield client
    await client.aclose()


async def _raw_stream(client: httpx.AsyncClient, until: list[str], headers: dict[str, str]) -> str:
    """The stream's text as it came, read until every string in ``until`` was in it."""
    text = ""
    async with asyncio.timeout(30), client.stream("GET", "/p/ops/events", headers=headers, timeout=60) as response:
        assert response.status_code == 200, response.status_code
        async for chunk in response.aiter_text():
            text += chunk
            if all(word in text for word in until):
                return text
    raise AssertionError(f"the stream ended before {until}:\n{text}")


async def test_someone_who_is_not_an_operator_gets_neither_the_pages_nor_the_stream(city: System) -> None:
    """Karel (no operator role) gets the portal's 404 for each page, a document's timeline and the stream, with or
    without Last-Event-ID; without a session the pages send to sign-in and the stream answers 401."""
    async with Outcomes(city.amqp_url, "notula.*") as outcomes:
        document_id = await _submitted(city, outcomes, "Collegebesluit voor niemand")
    karel = await sign_in_by_mail(city.public_url, city.smtp, EMAIL.format("karel.claes"))  # type: ignore[attr-defined]
    anonymous = httpx.AsyncClient(base_url=city.public_url)
    try:
        for path in (*PAGES, f"/p/ops/documents/{document_id}", "/p/ops/events", "/p/ops/events?type=%23"):
            for headers in ({}, {"Last-Event-ID": "0", "Accept": "text/event-stream"}):
                answer = await karel.get(path, headers=headers)
                assert answer.status_code == 404 and "text/event-stream" not in answer.headers["content-type"], path
                assert "Collegebesluit voor niemand" not in answer.text and "document.submitted" not in answer.text
                nobody = await anonymous.get(path, headers=headers)
                assert nobody.status_code == (401 if path.startswith("/p/ops/events") else 303), path
                assert "document.submitted" not in nobody.text
        attempted("a signed-in non-operator and an anonymous visitor open /p/ops/* and /p/ops/events (Last-Event-ID: 0)",
                  "404 (the portal's page for what she may not see) / 303 to sign-in, 401 for the stream")
    finally:
        await karel.aclose()
        await anonymous.aclose()


async def test_a_confidential_title_reaches_an_operator_in_no_page_and_no_event(city: System, iris: httpx.AsyncClient) -> None:
    """Iris neither submitted nor signs the confidential document: its title is in no operator page, not its timeline,
    and in no event of the stream from before it was submitted; the open document's title is (the check can fail)."""
    since = await _latest_seq(city)
    async with Outcomes(city.amqp_url, "notula.*") as outcomes:
        secret = await _submitted(city, outcomes, SECRET, confidential=True)
        open_ = await _submitted(city, outcomes, OPEN)
    stream = await _raw_stream(iris, [OPEN, f'"document":"{secret}"'], {"Last-Event-ID": str(since)})
    await settle(1.0)
    pages = [(await iris.get(path)).text for path in (*PAGES, f"/p/ops/documents/{secret}", f"/p/ops/documents/{open_}")]
    assert [page for page in [stream, *pages] if "Plopsa" in page] == []
    assert (await iris.get(f"/p/ops/documents/{uuid.uuid4()}")).status_code == 404  # a document nobody knows
    assert OPEN in pages[0] and OPEN in pages[-1] and "Confidential document" in pages[3]
    attempted("an operator reads /p/ops/documents, the timeline and the live stream of a confidential document she "
              "neither submitted nor signs", "its title is in none of them; the open document's title is")


async def test_a_stream_ends_when_its_session_does(city: System) -> None:
    """Signed out while her stream is open, Iris gets an `end` event at the next entry and the stream closes;
    reconnecting with her old cookie and Last-Event-ID is refused (401)."""
    iris = await sign_in_by_mail(city.public_url, city.smtp, EMAIL.format("iris.ilegems"))  # type: ignore[attr-defined]
    try:
        since = await _latest_seq(city)
        cookies = dict(iris.cookies)
        async with asyncio.timeout(60), iris.stream("GET", "/p/ops/events", headers={"Last-Event-ID": str(since)}) as live:
            assert live.status_code == 200
            chunks = live.aiter_text()
            await anext(chunks)  # the retry line: the stream is open
            page = await iris.get("/p/to-sign")
            assert (await iris.post("/p/sign-out", data={"csrf": csrf_on(page)})).status_code == 200
            async with Outcomes(city.amqp_url, "notula.*") as outcomes:
                await _submitted(city, outcomes, "Collegebesluit na afmelden")
            rest = "".join([chunk async for chunk in chunks])
        assert rest.endswith("event: end\ndata: signed-out\n\n") and "Collegebesluit na afmelden" not in rest
        async with httpx.AsyncClient(base_url=city.public_url, cookies=cookies) as old:
            again = await old.get("/p/ops/events", headers={"Last-Event-ID": str(since)})
        assert again.status_code == 401
        attempted("a live stream kept open after its session ended (signed out), then reopened with the old cookie",
                  "the stream sent `end` and closed at the next entry; reopening: 401")
    finally:
        await iris.aclose()
