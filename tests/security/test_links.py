"""No bearer secret on the bus or at rest. While documents are signed, declined,
moved to a substitute, completed and downloaded, and one mail is refused for
good, an administrator's consumer bound to every exchange keeps every message;
afterwards every token-shaped string in those messages, in the notifier's
tables, in the outboxes, in the dead-letter queues and in every service's log
is tried against the signing and download pages: none opens anything. The
links that did reach their mailboxes prove the search would have found one."""

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aio_pika
import asyncpg
import httpx
import pytest

from shared.topology import REJECTED_QUEUE, TOPOLOGY
from tests.security.conftest import TOKEN, attempted, settle
from tests.support.pdfs import make_pdf
from tests.support.system import Outcomes, System, follow_link, submission

pytestmark = pytest.mark.e2e

FILENAME = "besluit-ő–€.pdf"


class Capture:
    """What an administrator's test consumer bound to every exchange sees: (exchange, routing key, headers, body)."""

    def __init__(self, amqp_url: str) -> None:
        self._url = amqp_url
        self.messages: list[tuple[str, str, dict[str, Any], bytes]] = []

    async def __aenter__(self) -> "Capture":
        self._connection = await aio_pika.connect(self._url)
        channel = await self._connection.channel()
        queue = await channel.declare_queue(exclusive=True)
        for exchange in ("esign.events", "esign.intake", "esign.outcomes", "esign.commands"):
            await queue.bind(exchange, "#")
        await queue.bind("esign.unrouted", "")
        for key in [q.name for q in TOPOLOGY.queues] + [REJECTED_QUEUE]:
            await queue.bind("esign.dlx", key)
        await queue.consume(self._keep, no_ack=True)
        return self

    async def _keep(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        self.messages.append((message.exchange or "", message.routing_key or "", dict(message.headers or {}), message.body))

    async def __aexit__(self, *exc: object) -> None:
        await self._connection.close()

    def text(self) -> str:
        return "\n".join(f"{e} {k} {json.dumps(h, default=str)} {b.decode('utf-8', 'replace')}" for e, k, h, b in self.messages)


async def _mail_about(city: System, address: str, title: str, timeout: float = 30.0):  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        if found := [m for m in city.smtp.received_by(address) if title in m.subject]:  # type: ignore[attr-defined]
            return found[-1]
        await asyncio.sleep(0.1)
    raise AssertionError(f"no mail about {title!r} to {address}")


@pytest.fixture(scope="module")
async def run(city: System) -> AsyncIterator[dict[str, Any]]:
    """The end-to-end run, captured; what it left behind for the tests below."""
    smtp = city.smtp  # type: ignore[attr-defined]
    smtp.refuse("lies.leys@demo.paraaf.be")
    found: dict[str, Any] = {}
    async with Capture(city.amqp_url) as capture, Outcomes(city.amqp_url, "notula.*") as outcomes, httpx.AsyncClient() as browser:
        # A: signed by both, completed, the submitter mailed a download link; its filename is not ASCII.
        await city.publish(submission(make_pdf(pages=2), external_ref="A", title="Linktest A", filename=FILENAME))
        director = await _mail_about(city, "ann.aerts@demo.paraaf.be", "Linktest A")
        found["document_pdf"] = await browser.get(f"{director.signing_link}/document.pdf")
        assert (await follow_link(browser, director.signing_link)).status_code == 200
        mayor = await _mail_about(city, "bart.baert@demo.paraaf.be", "Linktest A")
        assert (await follow_link(browser, mayor.signing_link)).status_code == 200
        await outcomes.wait("notula.completed", "A")
        found["download_mail"] = await _mail_about(city, "elen.elaut@demo.paraaf.be", "Linktest A")
        # B: the only signer's address is refused for good (550).
        await city.publish(submission(make_pdf(), external_ref="B", title="Linktest B", flow=None,
                                      steps=[{"action": "sign", "signers": ["person:lies.leys"]}]))
        found["refused"] = (await outcomes.wait("notula.accepted", "B"))["document_id"]
        # C: declined by the director.
        await city.publish(submission(make_pdf(), external_ref="C", title="Linktest C"))
        declined = await _mail_about(city, "ann.aerts@demo.paraaf.be", "Linktest C")
        assert (await follow_link(browser, declined.signing_link, decline_reason="Niet volledig")).status_code == 200
        # D: moved to a substitute when its signer goes on leave.
        await city.publish(submission(make_pdf(), external_ref="D", title="Linktest D", flow=None,
                                      steps=[{"action": "sign", "signers": ["person:sofie.smet"]}]))
        found["moved_from"] = await _mail_about(city, "sofie.smet@demo.paraaf.be", "Linktest D")
        now = datetime.now(UTC)
        answer = await browser.post(
            city.url("router", "/absences"),
            json={"person": "sofie.smet", "from": now.isoformat(), "to": (now + timedelta(days=3)).isoformat()},
            headers=city.operator_headers(),
        )
        assert answer.status_code == 201, answer.text
        found["moved_to"] = await _mail_about(city, "marc.maes@demo.paraaf.be", "Linktest D")
        await outcomes.wait("notula.declined", "C")
        await settle(3.0)
    found["capture"] = capture
    yield found


async def _at_rest(city: System) -> str:
    """Every row of the notifier's tables and of every outbox, every message waiting in a dead-letter or holding queue."""
    conn = await asyncpg.connect(city.env["PARAAF_DATABASE_URL"])
    try:
        tables = await conn.fetch(
            "SELECT table_schema, table_name FROM information_schema.tables"
            " WHERE table_schema = 'notifier' OR table_name = 'outbox'"
        )
        rows = [
            str(r[0])
            for t in tables
            for r in await conn.fetch(f'SELECT row_to_json(x)::text FROM {t["table_schema"]}."{t["table_name"]}" x')
        ]
    finally:
        await conn.close()
    waiting = []
    connection = await aio_pika.connect(city.amqp_url)
    async with connection:
        channel = await connection.channel()
        for name in [q.dead_letter_queue for q in TOPOLOGY.queues] + ["unrouted", REJECTED_QUEUE]:
            queue = await channel.declare_queue(name, passive=True)
            held = []
            while (message := await queue.get(fail=False, no_ack=False)) is not None:
                held.append(message)
                waiting.append(f"{message.headers} {message.body.decode('utf-8', 'replace')}")
            for message in held:
                await message.nack(requeue=True)
    return "\n".join(rows + waiting)


def _logs(city: System) -> str:
    return "\n".join(path.read_text(errors="replace") for path in city.logs.glob("*.log"))


async def _opens(client: httpx.AsyncClient, city: System, token: str) -> list[str]:
    """The pages a token opens (status 200), signing or download."""
    opened = []
    for kind in ("s", "d"):
        if (await client.get(city.url("signer", f"/{kind}/{token}"))).status_code == 200:
            opened.append(kind)
    return opened


async def test_no_message_table_queue_or_log_holds_a_link_that_opens_anything(city: System, run: dict[str, Any]) -> None:
    """Every token-shaped string in the captured messages, the tables, the dead-letter queues and the logs is tried: none opens a page."""
    capture: Capture = run["capture"]
    places = {"messages on every exchange": capture.text(), "notifier tables, outboxes, dead-letter queues": await _at_rest(city),
              "service logs": _logs(city)}
    # The search finds a real link where one is: the download link in the submitter's mailbox.
    real = run["download_mail"].download_link.rsplit("/", 1)[-1]
    assert TOKEN.fullmatch(real)
    assert len(capture.messages) > 30, "the run was captured"
    async with httpx.AsyncClient() as client:
        assert await _opens(client, city, real) == ["d"]
        for place, text in places.items():
            candidates = set(TOKEN.findall(text))
            opened = {t: kinds for t in candidates if (kinds := await _opens(client, city, t))}
            attempted(f"tried {len(candidates)} token-shaped strings from the {place} against /s/ and /d/", f"opened: {opened or 'nothing'}")
            assert opened == {}, place
            assert f"{city.public_url}/s/" not in text and f"{city.public_url}/d/" not in text, place


async def test_a_mail_that_fails_for_good_revokes_the_link_made_for_it(city: System, run: dict[str, Any]) -> None:
    """Lies Leys's address is refused with 550: notification.failed, the mail parked without its link, and every link made for her request revoked."""
    conn = await asyncpg.connect(city.env["PARAAF_DATABASE_URL"])
    try:
        for _ in range(100):
            tokens = await conn.fetch(
                "SELECT t.revoked_at FROM signer.tokens t JOIN signer.requests r USING (request_id) WHERE r.document_id = $1::uuid",
                run["refused"],
            )
            if tokens and all(t["revoked_at"] for t in tokens):
                break
            await asyncio.sleep(0.1)
        failed = await conn.fetchval("SELECT count(*) FROM audit.log WHERE routing_key = 'notification.failed' AND document_id = $1::uuid", run["refused"])
    finally:
        await conn.close()
    attempted("a signing mail refused for good (550)", f"{len(tokens)} link(s) made for it, revoked: {sum(1 for t in tokens if t['revoked_at'])}")
    assert tokens and all(t["revoked_at"] for t in tokens)
    assert failed == 1


async def test_a_moved_request_s_old_link_is_gone_and_the_substitute_s_works(city: System, run: dict[str, Any]) -> None:
    """Sofie's link stops at the move (410, no form); Marc's opens his page."""
    async with httpx.AsyncClient() as client:
        old = await client.get(run["moved_from"].signing_link)
        new = await client.get(run["moved_to"].signing_link)
    assert old.status_code == 410 and 'name="csrf"' not in old.text
    assert new.status_code == 200


async def test_a_non_ascii_filename_is_served_per_rfc_6266_as_a_sandboxed_pdf(city: System, run: dict[str, Any]) -> None:
    """`besluit-ő–€.pdf` on the signing page's document and through the download link: 200, filename* in UTF-8, an ASCII fallback, nosniff and a sandbox."""
    async with httpx.AsyncClient() as client:
        download = await client.get(run["download_mail"].download_link)
    for response in (run["document_pdf"], download):
        assert response.status_code == 200 and response.content.startswith(b"%PDF")
        disposition = response.headers["content-disposition"]
        assert "filename*=UTF-8''besluit-%C5%91%E2%80%93%E2%82%AC.pdf" in disposition
        assert 'filename="besluit-o.pdf"' in disposition
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["content-security-policy"] == "sandbox"
    attempted(f"a PDF named {FILENAME} through the signing page and the download", f"200, Content-Disposition: {disposition}")
