"""A fresh install, used the moment it exists: an operator runs `paraaf setup` and `paraaf sources add`, the
integrator publishes at once — before a single service runs — and the services then come up one by one in
whatever order the machine starts them. Nothing falls between services: the document is accepted, both
signers are mailed and sign, and the source gets the signed PDF; nothing waits in `unrouted` or a
dead-letter queue."""

import asyncio
from collections.abc import AsyncIterator

import aio_pika
import httpx
import pytest

from shared.topology import TOPOLOGY
from tests.conftest import Infra, fresh_database, fresh_vhost
from tests.faults.conftest import report
from tests.support.pdfs import make_pdf
from tests.support.smtp import SmtpServer
from tests.support.system import Outcomes, System, follow_link, submission

pytestmark = [pytest.mark.e2e, pytest.mark.faults]

ORDERS = {
    "signer last": ("intake", "router", "notifier", "audit", "signer"),
    "router last": ("signer", "intake", "audit", "notifier", "router"),
    "pipeline backwards": ("audit", "notifier", "signer", "router", "intake"),
}


@pytest.fixture
async def fresh_install(infra: Infra, secrets_dir: str, smtp_server: SmtpServer) -> AsyncIterator[System]:
    """Set up as an operator does on a new database and vhost; no service started yet."""
    async with fresh_database(infra) as database_url, fresh_vhost(infra) as amqp_url:
        system = System(name="startup", database_url=database_url, amqp_url=amqp_url, smtp=smtp_server, secrets_dir=secrets_dir)
        await system.set_up()
        system.add_source("notula", "--org", "default", "--any-submitter", "--ad-hoc-steps")
        await system.load_demo_city()
        try:
            yield system
        finally:
            codes = system.stop()
        assert all(code == 0 for code in codes.values()), codes


async def _held(amqp_url: str) -> dict[str, int]:
    """Messages waiting in `unrouted` and in every dead-letter queue."""
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        depths = {}
        for name in ["unrouted", *(q.dead_letter_queue for q in TOPOLOGY.queues)]:
            depths[name] = (await channel.declare_queue(name, passive=True)).declaration_result.message_count
        return {name: depth for name, depth in depths.items() if depth}


@pytest.mark.parametrize("order", ORDERS, ids=list(ORDERS))
async def test_a_submission_sent_before_any_service_runs_completes_whatever_order_they_start_in(
    fresh_install: System, smtp_server: SmtpServer, order: str
) -> None:
    """Published right after `paraaf sources add`, then the five services started one by one in ``order``: the
    document completes with both signatures and nothing is left in `unrouted` or a dead-letter queue."""
    system = fresh_install
    async with Outcomes(system.amqp_url, "notula.*") as outcomes:
        await system.publish(submission(make_pdf(), external_ref=f"FIRST-{order}"))
        for service in ORDERS[order]:
            system.start_service(service)
            await asyncio.sleep(0.5)  # one at a time, as a slow machine or a supervisor brings them up
        async with httpx.AsyncClient() as client:
            for signer in ("ann.aerts@demo.paraaf.be", "bart.baert@demo.paraaf.be"):
                mail = (await smtp_server.wait_for_mail(signer, timeout=90))[0]
                assert (await follow_link(client, mail.signing_link)).status_code == 200
        completed = await outcomes.wait("notula.completed", f"FIRST-{order}", timeout=90)
    report(f"- fresh install, {order}: completed with {len(completed['signatures'])} signatures")
    assert [s["signer"]["name"] for s in completed["signatures"]] == ["Ann Aerts", "Bart Baert"]
    assert await _held(system.amqp_url) == {}
