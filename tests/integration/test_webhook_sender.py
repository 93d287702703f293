"""Intake's webhook sender on a real PostgreSQL against a real HTTP receiver: an outcome is kept for delivery with
the outcome itself, survives a sender that stops (a restart), reaches the receiver once it listens, and is given up
(webhook.abandoned in the outbox) once its time is over."""

import json
import socket
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from uuid import uuid4

import asyncpg
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from services.intake.domain import SourcePolicy
from services.intake.store import Document, PostgresIntakeStore
from services.intake.webhooks import PLAIN_HTTP_REFUSED, Backoff, WebhookSender, sign
from shared import blobs
from shared.contract import Outcome
from shared.db import connect_pool, migrate
from shared.messaging import Outbox
from tests.support.net import free_port, serving

MIGRATIONS = Path(__file__).resolve().parents[2] / "services" / "intake" / "migrations"
SECRET = "test-secret"


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await connect_pool(database_url)
    await migrate(pool, "blobs", [blobs.MIGRATIONS], messaging=False)
    await migrate(pool, "intake", [MIGRATIONS], messaging=True)
    yield pool
    await pool.close()


class Receiver:
    def __init__(self) -> None:
        self.port = free_port()
        self.got: list[tuple[dict[str, str], bytes]] = []
        self.app = Starlette(routes=[Route("/hook", self._take, methods=["POST"])])

    async def _take(self, request: Request) -> Response:
        self.got.append((dict(request.headers), await request.body()))
        return Response(status_code=200)


async def outcome_for(pool: asyncpg.Pool, url: str) -> Outcome:
    """Source `kassa` with a webhook to ``url``, and one outcome published for it (as a handler would, in a transaction)."""
    outcome = Outcome(source="kassa", external_ref="K-1", document_id=uuid4(), status="accepted")
    async with pool.acquire() as conn, conn.transaction():
        store = PostgresIntakeStore(conn, Outbox("intake"))
        await store.upsert_source(SourcePolicy("kassa", "default"))
        await store.set_webhook("kassa", url, SECRET)
        await store.publish(outcome)
    return outcome


def sender(pool: asyncpg.Pool, give_up_after: timedelta = timedelta(hours=1), *, allow_http: bool = False) -> WebhookSender:
    backoff = Backoff(first=0.0, longest=0.0, give_up_after=give_up_after)
    return WebhookSender(lambda: pool, Outbox("intake"), backoff, timeout=2, poll_seconds=0.1, allow_http=allow_http)


async def test_a_delivery_outlives_a_down_receiver_and_a_restart_and_arrives_once_signed(pool: asyncpg.Pool) -> None:
    """Tried while the receiver is down, then by a new sender once it listens: one request, signed, named by the outcome."""
    receiver = Receiver()
    outcome = await outcome_for(pool, f"http://127.0.0.1:{receiver.port}/hook")
    await sender(pool).tick()
    assert await pool.fetchval("SELECT attempts FROM intake.webhook_deliveries WHERE state = 'pending'") == 1
    async with serving(receiver.app, receiver.port):
        restarted = sender(pool)
        await restarted.tick()
        await restarted.tick()
    [(headers, body)] = receiver.got
    timestamp = int(headers["paraaf-signature"].split(",")[0].removeprefix("t="))
    assert headers["paraaf-signature"] == sign(SECRET, timestamp, body)
    assert headers["paraaf-delivery"] == str(outcome.outcome_id) and json.loads(body)["status"] == "accepted"
    assert await pool.fetchval("SELECT state FROM intake.webhook_deliveries") == "delivered"


async def test_a_delivery_past_its_time_is_given_up_and_announced(pool: asyncpg.Pool) -> None:
    """With no time left, one failure gives it up: state abandoned, and webhook.abandoned waits in the outbox."""
    await outcome_for(pool, f"http://127.0.0.1:{free_port()}/hook")
    await sender(pool, give_up_after=timedelta(0)).tick()
    assert await pool.fetchval("SELECT state FROM intake.webhook_deliveries") == "abandoned"
    routing_keys = [r["routing_key"] for r in await pool.fetch("SELECT routing_key FROM intake.outbox ORDER BY id")]
    assert routing_keys == ["kassa.accepted", "webhook.abandoned"]


async def test_a_source_without_a_webhook_has_nothing_to_deliver(pool: asyncpg.Pool) -> None:
    """Its outcomes go to its queue only."""
    async with pool.acquire() as conn, conn.transaction():
        store = PostgresIntakeStore(conn, Outbox("intake"))
        await store.upsert_source(SourcePolicy("notula", "default"))
        await store.publish(Outcome(source="notula", external_ref="N-1", document_id=uuid4(), status="accepted"))
    assert await pool.fetchval("SELECT count(*) FROM intake.webhook_deliveries") == 0


async def test_a_plain_http_webhook_stored_before_the_rule_gets_nothing_until_allowed(pool: asyncpg.Pool) -> None:
    """A webhook stored as plain http to another machine (by name, not loopback) before `paraaf sources add` refused
    such URLs: its outcomes, the signed PDF with them, are not sent, the delivery says why and waits; once an operator
    allows plain http (PARAAF_WEBHOOK_ALLOW_HTTP=true) the same delivery arrives."""
    receiver = Receiver()
    await outcome_for(pool, f"http://{socket.gethostname()}:{receiver.port}/hook")
    async with serving(receiver.app, receiver.port, host="0.0.0.0"):
        await sender(pool).tick()
        row = await pool.fetchrow("SELECT state, attempts, last_error FROM intake.webhook_deliveries")
        assert (row["state"], row["attempts"], row["last_error"]) == ("pending", 1, PLAIN_HTTP_REFUSED)
        assert receiver.got == []
        await sender(pool, allow_http=True).tick()
    assert len(receiver.got) == 1
    assert await pool.fetchval("SELECT state FROM intake.webhook_deliveries") == "delivered"


async def test_outcomes_of_document_changes_are_kept_only_for_a_source_with_a_webhook(pool: asyncpg.Pool) -> None:
    """A document's change reads whether its source has a webhook: kassa's outcome is kept for delivery, notula's
    (no webhook) is not, and both go to their queues."""
    ids = {"kassa": uuid4(), "notula": uuid4()}
    async with pool.acquire() as conn, conn.transaction():
        store = PostgresIntakeStore(conn, Outbox("intake"))
        for source, document_id in ids.items():
            await store.upsert_source(SourcePolicy(source, "default"))
            await store.add_document(
                Document(document_id, "default", source, "R-1", "Besluit", "elen", "b.pdf", blobs.sha256_hex(b"%PDF-1")), b"%PDF-1"
            )
        await store.set_webhook("kassa", "https://kassa.example/hook", SECRET)
    async with pool.acquire() as conn, conn.transaction():
        store = PostgresIntakeStore(conn, Outbox("intake"))
        for source, document_id in ids.items():
            document = await store.set_status(document_id, "accepted")
            await store.publish(Outcome(source=source, external_ref="R-1", document_id=document.document_id, status="accepted"))
    assert [r["source"] for r in await pool.fetch("SELECT source FROM intake.webhook_deliveries")] == ["kassa"]
    assert sorted(r["routing_key"] for r in await pool.fetch("SELECT routing_key FROM intake.outbox")) == ["kassa.accepted", "notula.accepted"]
