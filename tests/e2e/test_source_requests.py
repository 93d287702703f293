"""A source system's other ways in, on one running demo city: withdrawing and asking about its own documents over
the queue (and never another source's), submitting and asking over HTTP with a submit key, and outcomes by webhook —
signed, delivered once to a receiver that was down for a while, and an incident for one down for good, while the
flow never waits for either."""

import asyncio
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any
from uuid import uuid4

import aio_pika
import asyncpg
import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from services.intake.domain import SourcePolicy
from services.intake.store import PostgresIntakeStore
from shared import apikeys
from shared.messaging import Outbox
from tests.conftest import Infra, city_on_fresh_install
from tests.support.listener import Listener
from tests.support.net import free_port, serving
from tests.support.pdfs import make_pdf
from tests.support.system import Outcomes, System, submission
from tests.support.waiting import cli, eventually

pytestmark = pytest.mark.e2e
RETRY_SECONDS = 20  # PARAAF_WEBHOOK_RETRY_HOURS in this city, so a receiver down for good is given up within the test


@pytest.fixture(scope="module")
async def city(infra: Infra, secrets_dir: str) -> AsyncIterator[System]:
    env = {
        "PARAAF_WEBHOOK_RETRY_HOURS": str(RETRY_SECONDS / 3600),
        "PARAAF_WEBHOOK_FIRST_RETRY_SECONDS": "0.3",
        "PARAAF_WEBHOOK_LONGEST_RETRY_SECONDS": "2",
    }
    async with city_on_fresh_install(infra, secrets_dir, "requests", **env) as system:
        yield system


# The receiver's check, as README "Webhooks" gives it to integrators.
def verify(secret: str, header: str, body: bytes, tolerance: int = 300) -> bool:
    fields = dict(part.split("=", 1) for part in header.split(","))
    timestamp, received = int(fields["t"]), fields["v1"]
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, received) and abs(time.time() - timestamp) <= tolerance


class Receiver:
    """A source's webhook endpoint: keeps each delivery it verified; refuses (401) one whose signature is wrong."""

    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/paraaf"
        self.deliveries: list[tuple[str, dict[str, Any]]] = []
        self.app = Starlette(routes=[Route("/paraaf", self._receive, methods=["POST"])])

    async def _receive(self, request: Request) -> Response:
        body = await request.body()
        if not verify(self.secret, request.headers["Paraaf-Signature"], body):
            return Response(status_code=401)
        self.deliveries.append((request.headers["Paraaf-Delivery"], json.loads(body)))
        return Response(status_code=204)

    def holding(self, count: int) -> Any:
        async def probe() -> bool:
            return len(self.deliveries) >= count

        return probe

    def holding_outcome(self, outcome_id: str) -> Any:
        async def probe() -> bool:
            return outcome_id in {body["outcome_id"] for _, body in self.deliveries}

        return probe

    def listening(self) -> Any:
        return serving(self.app, self.port)


def submit_key(city: System, source: str) -> dict[str, str]:
    key = city.cli("keys", "create", "--name", source, "--scopes", "submit").stdout.strip()
    return {"Authorization": f"Bearer {key}"}


async def post_submission(city: System, headers: dict[str, str], **fields: Any) -> httpx.Response:
    async with httpx.AsyncClient(timeout=60) as client:
        return await client.post(city.url("intake", "/submissions"), json={**submission(make_pdf()), **fields}, headers=headers)


async def ask(city: System, source: str, body: dict[str, Any], *, as_source: str = "notula") -> str:
    """Publish a request on esign.intake as the source system does; returns its message id."""
    message_id = str(uuid4())
    connection = await aio_pika.connect(city.source_urls[as_source])
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange("esign.intake", ensure=False)
        user = aio_pika.connection.URL(city.source_urls[as_source]).user
        message = aio_pika.Message(json.dumps(body).encode(), content_type="application/json", message_id=message_id,
                                   delivery_mode=aio_pika.DeliveryMode.PERSISTENT, user_id=user)
        await exchange.publish(message, routing_key=source)
    return message_id


async def tried_twice(city: System, source: str, count: int) -> bool:
    """Whether ``count`` deliveries to the source's webhook are each still pending after two failed tries."""
    conn = await asyncpg.connect(city.env["PARAAF_DATABASE_URL"])
    try:
        rows = await conn.fetch("SELECT attempts, state FROM intake.webhook_deliveries WHERE source = $1", source)
    finally:
        await conn.close()
    return len(rows) == count and all(r["attempts"] >= 2 and r["state"] == "pending" for r in rows)


async def registered_with_webhook(city: System, source: str, receiver: Receiver) -> dict[str, str]:
    """What `paraaf sources add --webhook` and `paraaf keys create --scopes submit` do (archief's fixture types them),
    done in this process to spare the suite two commands; returns the source's submit key as a header."""
    await city.register(SourcePolicy(source, "default"))
    conn = await asyncpg.connect(city.env["PARAAF_DATABASE_URL"])
    try:
        async with conn.transaction():
            await PostgresIntakeStore(conn, Outbox("intake")).set_webhook(source, receiver.url, receiver.secret)
            _, key = await apikeys.create_key(conn, org="default", name=source, scopes=["submit"])
    finally:
        await conn.close()
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="module")
async def given_up(city: System) -> AsyncIterator[dict[str, Any]]:
    """Source `archief`, whose receiver is down from the start: its outcome is being tried while the other tests run."""
    receiver = Receiver("")
    printed = (await cli(city, "sources", "add", "archief", "--org", "default", "--any-submitter", "--webhook", receiver.url)).stdout
    receiver.secret = next(line.split(": ", 1)[1] for line in printed.splitlines() if line.startswith("webhook secret: "))
    city.source_urls["archief"] = printed.strip().splitlines()[-1]
    key = {"Authorization": f"Bearer {(await cli(city, 'keys', 'create', '--name', 'archief', '--scopes', 'submit')).stdout.strip()}"}
    async with Outcomes(city.amqp_url, "archief.*") as outcomes:
        answer = await post_submission(city, key, source="archief", external_ref="ARCH-1")
        assert answer.status_code == 202, answer.text
        accepted = await outcomes.wait("archief.accepted", "ARCH-1")
    yield {"receiver": receiver, "accepted": accepted, "document_id": answer.json()["document_id"]}


async def test_a_source_asks_over_the_queue_where_its_document_stands(city: System, given_up: dict[str, Any]) -> None:
    """status.<source> is answered in the source's outcomes as <source>.status, naming the question it answers; a
    malformed question is answered with what is wrong."""
    async with Outcomes(city.amqp_url, "notula.*") as outcomes:
        await city.publish(submission(make_pdf(), external_ref="Q-1"))
        accepted = await outcomes.wait("notula.accepted", "Q-1")
        asked = await ask(city, "status.notula", {"source": "notula", "external_ref": "Q-1"})
        report = await outcomes.wait("notula.status", "Q-1")
        unknown = await ask(city, "status.notula", {"source": "notula", "external_ref": "NEVER-SENT"})
        nothing = await outcomes.wait("notula.status", "NEVER-SENT")
        await ask(city, "status.notula", {"source": 7, "external_ref": "NO-SOURCE"})
        malformed = await outcomes.wait("notula.status", "NO-SOURCE", code="invalid_message")
    assert (report["status"], report["document_id"], report["in_reply_to"]) == ("accepted", accepted["document_id"], asked)
    assert (nothing["status"], nothing["document_id"], nothing["in_reply_to"]) == ("unknown", None, unknown)
    assert "source" in malformed["reason"] and malformed["query"] == "status"


async def test_a_source_withdraws_its_own_document_over_the_queue(city: System, given_up: dict[str, Any]) -> None:
    """withdraw.<source> stops the document (<source>.withdrawn, by source:<name>); a second one is refused as ended."""
    async with Outcomes(city.amqp_url, "notula.*") as outcomes:
        await city.publish(submission(make_pdf(), external_ref="W-1"))
        await outcomes.wait("notula.accepted", "W-1")
        await ask(city, "withdraw.notula", {"source": "notula", "external_ref": "W-1", "reason": "the council moved it"})
        withdrawn = await outcomes.wait("notula.withdrawn", "W-1")
        await ask(city, "withdraw.notula", {"source": "notula", "external_ref": "W-1", "reason": "again"})
        refused = await outcomes.wait("notula.status", "W-1")
    assert "source:notula" in withdrawn["reason"] and "the council moved it" in withdrawn["reason"]
    assert (refused["query"], refused["status"], refused["code"]) == ("withdraw", "withdrawn", "ended"), refused
    trail = (await cli(city, "trail", withdrawn["document_id"])).stdout
    assert "source:notula" in trail


async def test_a_source_cannot_withdraw_or_ask_about_another_sources_document(city: System, given_up: dict[str, Any]) -> None:
    """archief, on its own routing keys, asking after notula's reference finds nothing and stops nothing; naming
    notula as the source is refused; notula's document goes on."""
    async with Outcomes(city.amqp_url, "#") as outcomes:
        await city.publish(submission(make_pdf(), external_ref="MINE-1"))
        await outcomes.wait("notula.accepted", "MINE-1")
        for key, body in (
            ("withdraw.archief", {"source": "archief", "external_ref": "MINE-1", "reason": "not ours"}),
            ("status.archief", {"source": "archief", "external_ref": "MINE-1"}),
            ("withdraw.archief", {"source": "notula", "external_ref": "MINE-1", "reason": "pretending"}),
        ):
            await ask(city, key, body, as_source="archief")
        answers = await Listener.wait(outcomes, "archief.status", count=3, external_ref="MINE-1")
        await ask(city, "status.notula", {"source": "notula", "external_ref": "MINE-1"})
        still = await outcomes.wait("notula.status", "MINE-1")
    assert sorted((a["query"], a["status"], a["code"]) for a in answers) == [
        ("status", "unknown", None), ("withdraw", "unknown", "source_mismatch"), ("withdraw", "unknown", "unknown_document"),
    ]
    assert all(a["document_id"] is None for a in answers)
    assert still["status"] == "accepted"


async def test_a_system_submits_and_asks_over_http_with_its_submit_key(city: System, given_up: dict[str, Any]) -> None:
    """POST /submissions (JSON or multipart) is checked and deduped as on the queue; GET answers only the key's source."""
    key = await asyncio.to_thread(submit_key, city, "notula")
    async with Outcomes(city.amqp_url, "notula.*") as outcomes:
        first = await post_submission(city, key, external_ref="H-1")
        again = await post_submission(city, key, external_ref="H-1")
        other_pdf = await post_submission(city, key, external_ref="H-1", pdf=submission(make_pdf(2))["pdf"])
        async with httpx.AsyncClient(timeout=60) as client:
            form = {k: str(v) for k, v in submission(b"", external_ref="H-2").items() if k not in ("pdf", "metadata")}
            multipart = await client.post(city.url("intake", "/submissions"), data=form, files={"pdf": ("b.pdf", make_pdf())}, headers=key)
            broken = await client.post(city.url("intake", "/submissions"), data={**form, "external_ref": "H-3"},
                                       files={"pdf": ("b.pdf", b"not a pdf")}, headers=key)
        await outcomes.wait("notula.accepted", "H-1")
        await outcomes.wait("notula.rejected", "H-3", code="not_pdf")
    assert (first.status_code, again.status_code) == (202, 202) and first.json()["document_id"] == again.json()["document_id"]
    assert other_pdf.status_code == 422 and other_pdf.json()["code"] == "duplicate_ref"
    assert multipart.status_code == 202, multipart.text
    assert broken.status_code == 422 and broken.json()["code"] == "not_pdf"
    async with httpx.AsyncClient(timeout=30) as client:
        status = await client.get(city.url("intake", "/submissions/notula/H-1"), headers=key)
        missing = await client.get(city.url("intake", "/submissions/notula/NONE"), headers=key)
        others = await client.get(city.url("intake", "/submissions/archief/ARCH-1"), headers=key)
        anonymous = await client.get(city.url("intake", "/submissions/notula/H-1"))
        operator = await client.get(city.url("intake", "/submissions/notula/H-1"), headers=city.operator_headers())
    assert (status.status_code, status.json()["status"], status.json()["document_id"]) == (200, "accepted", first.json()["document_id"])
    assert missing.status_code == 404 and missing.json()["code"] == "unknown_document"
    assert (others.status_code, anonymous.status_code, operator.status_code) == (403, 401, 403)


async def test_a_receiver_down_for_a_while_gets_every_outcome_once_signed(city: System, given_up: dict[str, Any]) -> None:
    """Outcomes go on while the receiver is down; once it listens, each arrives, verified, exactly once."""
    receiver = Receiver(secrets.token_urlsafe(32))
    key = await registered_with_webhook(city, "kassa", receiver)
    async with Outcomes(city.amqp_url, "kassa.*") as outcomes:
        for ref in ("K-1", "K-2"):
            assert (await post_submission(city, key, source="kassa", external_ref=ref)).status_code == 202
        await ask(city, "status.kassa", {"source": "kassa", "external_ref": "K-1"}, as_source="kassa")
        await outcomes.wait("kassa.accepted", "K-1")
        await outcomes.wait("kassa.accepted", "K-2")
        await outcomes.wait("kassa.status", "K-1")
        await eventually(lambda: tried_twice(city, "kassa", 3), "every kassa delivery failed twice while its receiver was down")
        async with receiver.listening():
            await eventually(receiver.holding(3), "three deliveries to kassa's receiver")
            await asyncio.sleep(1.5)  # time for a second copy, were one sent
        sent = {body["outcome_id"]: key for key, body in outcomes.received}
    received = [delivery for delivery, _ in receiver.deliveries]
    assert sorted(received) == sorted(sent) and len(set(received)) == len(received), (received, sent)
    assert all(body["outcome_id"] == delivery for delivery, body in receiver.deliveries)


async def test_a_receiver_down_for_good_becomes_an_incident_without_holding_up_the_flow(
    city: System, given_up: dict[str, Any]
) -> None:
    """archief's outcome was published at once; its webhook, never answering, is given up and listed as an incident
    whose fix, once the receiver answers, delivers it and clears the incident."""
    assert given_up["accepted"]["document_id"] == given_up["document_id"]

    async def incident() -> dict[str, Any] | None:
        listed = json.loads((await cli(city, "incidents", "--json")).stdout)
        return next((i for i in listed if i["kind"] == "webhook" and i["document_id"] == given_up["document_id"]), None)

    found = await eventually(incident, "the given-up webhook listed as an incident", timeout=RETRY_SECONDS + 30)
    assert "archief" in found["cause"] and "paraaf sources redeliver archief" in found["fix"]
    receiver: Receiver = given_up["receiver"]
    async with receiver.listening():
        await cli(city, "sources", "redeliver", "archief")
        await eventually(receiver.holding_outcome(given_up["accepted"]["outcome_id"]), "the redelivered outcome at archief's receiver")
        await eventually(lambda: _gone(incident), "the webhook incident gone once delivered")


async def _gone(incident: Any) -> bool:
    return await incident() is None
