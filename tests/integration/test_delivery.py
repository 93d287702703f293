"""Delivery guarantees of shared/messaging.py on real RabbitMQ and PostgreSQL:
at-least-once delivery, exactly-once effects, nothing dropped silently, and
nothing accepted from a publisher that does not own the message."""

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from uuid import uuid4

import aio_pika
import asyncpg
import pytest
from faststream import TestApp

from services.dlq import drop, replay, replay_unrouted, show
from shared.credentials import Identity, read_identity
from shared.events import DocumentCompleted, DocumentWithdrawn
from shared.topology import EVENTS, OPERATOR, QUORUM, TOPOLOGY
from tests.support.bus import consumer_prefetch, publish_as, publish_raw_as
from tests.support.probe import PROBE_SCHEMAS, PROBE_SERVICES, PROBE_TOPOLOGY, Probe


@pytest.fixture
async def probe(provision) -> AsyncIterator[Probe]:
    settings = await provision(
        PROBE_TOPOLOGY,
        schemas=PROBE_SCHEMAS,
        services=PROBE_SERVICES,
        delivery_limit=2,
        prefetch=4,
    )
    probe = Probe(settings)
    async with TestApp(probe.service.app):
        yield probe


def operator(probe: Probe) -> Identity:
    return read_identity(probe.settings, OPERATOR, needs=("amqp_url",))


def operator_url(probe: Probe) -> str:
    return operator(probe).amqp_url


@pytest.fixture
async def channel(amqp_url: str) -> AsyncIterator[aio_pika.abc.AbstractChannel]:
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        yield await connection.channel(publisher_confirms=True)


async def publish(channel: aio_pika.abc.AbstractChannel, routing_key: str, body: bytes, **properties: object) -> None:
    """As the administrator (who may publish anything, but only as itself)."""
    exchange = await channel.get_exchange(EVENTS.name)
    await exchange.publish(aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT, **properties), routing_key)


async def eventually(check: Callable[[], object], timeout: float = 20.0) -> None:
    """Wait until ``check()`` (sync or async) is true."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


async def drain(channel: aio_pika.abc.AbstractChannel, queue_name: str) -> list[aio_pika.abc.AbstractIncomingMessage]:
    queue = await channel.declare_queue(queue_name, passive=True)
    messages = []
    while (message := await queue.get(fail=False)) is not None:
        await message.ack()
        messages.append(message)
    return messages


def withdrawn() -> DocumentWithdrawn:
    return DocumentWithdrawn(correlation_id=uuid4(), withdrawn_by="elen.elaut", reason="test")


async def test_an_event_delivered_twice_has_one_effect(probe: Probe, channel, database_url: str) -> None:
    """The same event published twice is handled once: one effect, one outgoing event."""
    completed = await channel.declare_queue(exclusive=True)
    await completed.bind(EVENTS.name, DocumentCompleted.routing_key)
    event = withdrawn()
    await publish_as(probe.settings, "router", event)
    await publish_as(probe.settings, "router", event)
    outgoing = []
    await completed.consume(outgoing.append, no_ack=True)
    await eventually(lambda: len(outgoing) == 1)
    await asyncio.sleep(0.5)
    conn = await asyncpg.connect(database_url)
    effects = await conn.fetchval("SELECT count(*) FROM probe.effects WHERE event_id = $1", event.event_id)
    await conn.close()
    assert effects == 1
    assert len(outgoing) == 1
    message = outgoing[0]
    assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
    assert message.user_id == f"{probe.settings.broker_user_prefix}.probe"
    assert message.message_id == json.loads(message.body)["event_id"]
    assert json.loads(message.body)["causation_id"] == str(event.event_id)


async def test_a_handler_that_keeps_failing_sends_the_message_to_its_dead_letter_queue(probe: Probe, channel) -> None:
    """After the delivery limit, a message whose handler fails is kept in <queue>.dlq, not lost."""
    probe.fail = True
    event = withdrawn()
    await publish_as(probe.settings, "router", event)
    dead: list[aio_pika.abc.AbstractIncomingMessage] = []

    async def arrived() -> bool:
        dead.extend(await drain(channel, "probe.events.dlq"))
        return bool(dead)

    await eventually(arrived, timeout=30)
    assert json.loads(dead[0].body)["event_id"] == str(event.event_id)
    assert probe.calls == 3  # one delivery and two redeliveries (x-delivery-limit 2)


async def effects(database_url: str, *events: DocumentWithdrawn) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        return await conn.fetchval("SELECT count(*) FROM probe.effects WHERE event_id = ANY($1::uuid[])", [e.event_id for e in events])
    finally:
        await conn.close()


async def test_a_poison_event_ends_in_the_dead_letter_queue_with_its_error_while_the_others_flow(
    probe: Probe, channel, database_url: str
) -> None:
    """An event whose handler always fails is parked in <queue>.dlq after the delivery limit with the handler's last
    error in `x-paraaf-error`; the events published behind it take effect meanwhile, and `dlq show` says why."""
    poison, behind = withdrawn(), [withdrawn() for _ in range(5)]
    probe.poison.add(poison.event_id)
    await publish_as(probe.settings, "router", poison, *behind)

    async def all_behind_took_effect() -> bool:
        return await effects(database_url, *behind) == 5

    await eventually(all_behind_took_effect)
    message_id = str(poison.event_id)

    async def parked() -> dict | None:
        return await show(operator_url(probe), "probe.events.dlq", message_id)

    await eventually(parked, timeout=30)
    shown = await parked()
    assert shown is not None
    assert shown["error"] == "RuntimeError: the handler's dependency is down"
    assert shown["reason"].startswith("handler failed 3 times")
    assert shown["routing_key"] == "document.withdrawn"
    assert shown["publisher"] == f"{probe.settings.broker_user_prefix}.router"
    assert json.loads(shown["body"])["event_id"] == message_id
    assert await effects(database_url, poison) == 0


async def test_dropping_a_dead_letter_removes_it_and_publishes_who_dropped_what_and_why(probe: Probe, channel) -> None:
    """`paraaf dlq drop` takes exactly that message out of <queue>.dlq and publishes `dead_letter.dropped` as the
    operator (the audit log's record of it); the other dead letters stay."""
    await publish_raw_as(probe.settings, "router", EVENTS.name, DocumentWithdrawn.routing_key, b'{"not": "an event"}', message_id="m-1")
    await publish_raw_as(probe.settings, "router", EVENTS.name, DocumentWithdrawn.routing_key, b'{"nor": "this"}', message_id="m-2")

    async def both_parked() -> bool:
        return (await channel.declare_queue("probe.events.dlq", passive=True)).declaration_result.message_count == 2

    await eventually(both_parked)
    audit = await channel.declare_queue(exclusive=True)
    await audit.bind(EVENTS.name, "dead_letter.dropped")
    event = await drop(operator(probe), "probe.events.dlq", "m-1", by="ops@town", reason="a partner's test message")
    assert event is not None and event.reason == "a partner's test message" and event.dropped_by == "ops@town"
    published: list[aio_pika.abc.AbstractIncomingMessage] = []

    async def announced() -> bool:
        published.extend(await drain(channel, audit.name))
        return bool(published)

    await eventually(announced)
    body = json.loads(published[0].body)
    assert published[0].user_id == f"{probe.settings.broker_user_prefix}.operator"
    assert (body["queue"], body["message_id"], body["dropped_by"]) == ("probe.events.dlq", "m-1", "ops@town")
    assert body["dead_lettered_because"].startswith("malformed")
    assert [m.message_id for m in await drain(channel, "probe.events.dlq")] == ["m-2"]
    assert await drop(operator(probe), "probe.events.dlq", "m-1", by="ops@town", reason="again") is None


async def test_the_consumer_runs_with_the_configured_prefetch(probe: Probe, amqp_url: str) -> None:
    """PARAAF_PREFETCH (4 here) is what the broker holds the service's consumer to, not unlimited (0)."""
    seen: dict[str, list[int]] = {}

    async def listed() -> bool:  # the management API shows consumers a few seconds after they start
        seen.update(await consumer_prefetch(amqp_url))
        return "probe.events" in seen

    await eventually(listed, timeout=30)
    assert seen["probe.events"] == [4]


async def test_a_dead_lettered_message_replayed_after_the_fix_is_handled(probe: Probe, channel, amqp_url: str, database_url: str) -> None:
    """Once the cause is fixed, `paraaf dlq replay` sends the message back and it takes effect, once."""
    probe.fail = True
    event = withdrawn()
    await publish_as(probe.settings, "router", event)

    async def dead_lettered() -> bool:
        return (await channel.declare_queue("probe.events.dlq", passive=True)).declaration_result.message_count == 1

    await eventually(dead_lettered, timeout=30)
    probe.fail = False
    assert await replay(operator(probe), "probe.events", by="ops@test") == (1, 0)
    conn = await asyncpg.connect(database_url)
    try:
        async def took_effect() -> bool:
            return await conn.fetchval("SELECT count(*) FROM probe.effects WHERE event_id = $1", event.event_id) == 1

        await eventually(took_effect)
        assert await replay(operator(probe), "probe.events", by="ops@test") == (0, 0)
    finally:
        await conn.close()


async def test_a_malformed_event_is_dead_lettered_without_retrying(probe: Probe, channel) -> None:
    """A body that is not the event its routing key names goes to the dead-letter queue at once."""
    await publish_raw_as(probe.settings, "router", EVENTS.name, DocumentWithdrawn.routing_key, b'{"not": "an event"}')
    dead: list[aio_pika.abc.AbstractIncomingMessage] = []

    async def arrived() -> bool:
        dead.extend(await drain(channel, "probe.events.dlq"))
        return bool(dead)

    await eventually(arrived)
    assert dead[0].body == b'{"not": "an event"}'
    assert dead[0].headers["x-paraaf-reason"].startswith("malformed")
    assert probe.calls == 0


async def test_a_message_nobody_listens_for_is_kept_in_unrouted(probe: Probe, channel) -> None:
    """A command whose routing key no queue is bound to lands in queue `unrouted` (every event has the audit log)."""
    commands = await channel.get_exchange("esign.commands")
    await commands.publish(aio_pika.Message(b"{}", delivery_mode=aio_pika.DeliveryMode.PERSISTENT), "nobody.listens")
    kept: list[aio_pika.abc.AbstractIncomingMessage] = []

    async def arrived() -> bool:
        kept.extend(await drain(channel, "unrouted"))
        return bool(kept)

    await eventually(arrived)
    assert kept[0].routing_key == "nobody.listens"


async def test_replay_unrouted_publishes_again_where_it_was_first_published(probe: Probe, channel) -> None:
    """A message that found no queue waits in `unrouted`; once a queue is bound for it, `paraaf dlq replay unrouted`
    routes it on, to the same exchange and routing key, as its first publisher."""
    commands = await channel.get_exchange("esign.commands")
    body = b'{"sent": "before anyone listened"}'
    await commands.publish(aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT), "late.listener")

    async def held() -> bool:
        return (await channel.declare_queue("unrouted", passive=True)).declaration_result.message_count == 1

    await eventually(held)
    listener = await channel.declare_queue(exclusive=True)
    await listener.bind("esign.commands", "late.listener")
    assert await replay_unrouted(operator(probe), by="ops@test") == 1
    routed: list[aio_pika.abc.AbstractIncomingMessage] = []

    async def arrived() -> bool:
        routed.extend(await drain(channel, listener.name))
        return bool(routed)

    await eventually(arrived)
    assert routed[0].body == body
    assert routed[0].exchange == "esign.commands"
    assert routed[0].routing_key == "late.listener"
    assert await drain(channel, "unrouted") == []


async def test_a_message_the_broker_returns_stays_in_the_outbox_until_it_is_routed(probe: Probe, channel, database_url: str) -> None:
    """With no queue for it at all (here even `unrouted` is gone), the broker returns the relay's mandatory publish:
    the row stays in the outbox and goes out once a queue is there again, instead of being deleted unsent."""
    for name in ["unrouted", *(q.name for q in TOPOLOGY.queues)]:
        await channel.queue_delete(name)
    await publish_as(probe.settings, "router", withdrawn())
    conn = await asyncpg.connect(database_url)
    try:
        await eventually(lambda: probe.calls == 1)
        await asyncio.sleep(1.5)
        assert await conn.fetchval("SELECT count(*) FROM probe.outbox") == 1
        unrouted = await channel.declare_queue("unrouted", durable=True, arguments=QUORUM)
        await unrouted.bind("esign.unrouted")

        async def sent() -> bool:
            return await conn.fetchval("SELECT count(*) FROM probe.outbox") == 0

        await eventually(sent, timeout=30)
    finally:
        await conn.close()
    kept = await drain(channel, "unrouted")
    assert [m.routing_key for m in kept] == ["document.completed"]


async def test_replay_keeps_what_a_service_parked_in_its_dead_letter_queue_on_purpose(probe: Probe, channel, amqp_url: str) -> None:
    """A message put in <queue>.dlq by a service (not dead-lettered by the broker) stays there on replay."""
    dlx = await channel.get_exchange("esign.dlx")
    await dlx.publish(aio_pika.Message(b'{"undeliverable": "mail"}', delivery_mode=2), routing_key="probe.events")

    async def parked() -> bool:
        return (await channel.declare_queue("probe.events.dlq", passive=True)).declaration_result.message_count == 1

    await eventually(parked)
    assert await replay(operator(probe), "probe.events", by="ops@test") == (0, 1)
    await eventually(parked)  # handed back (nack) rather than lost
    assert probe.calls == 0


@pytest.mark.parametrize("user_id", [None, "guest"], ids=["without user_id", "as another user"])
async def test_an_event_from_a_publisher_that_does_not_own_it_is_dead_lettered_untouched(
    probe: Probe, channel, user_id: str | None
) -> None:
    """document.withdrawn is the router's: published by anyone else (here the broker's administrator, whose
    permissions let it), it has no effect and waits in the dead-letter queue with reason `untrusted publisher`."""
    event = withdrawn()
    await publish(channel, event.routing_key, event.to_json(), user_id=user_id)
    dead: list[aio_pika.abc.AbstractIncomingMessage] = []

    async def arrived() -> bool:
        dead.extend(await drain(channel, "probe.events.dlq"))
        return bool(dead)

    await eventually(arrived)
    assert dead[0].headers["x-paraaf-reason"] == "untrusted publisher"
    assert dead[0].headers["x-paraaf-publisher"] == (user_id or "")
    assert probe.calls == 0
    assert await replay(operator(probe), "probe.events", by="ops@test") == (0, 0), "nothing to replay: it was never delivered"


async def test_a_loop_that_loses_a_cancellation_does_not_hold_up_the_stop(provision) -> None:
    """A background loop that swallows the first cancellation (as a lost cancel in asyncio.wait_for does on 3.11)
    is cancelled again: the service stops within seconds instead of hanging until it is killed."""
    settings = await provision(PROBE_TOPOLOGY, schemas=PROBE_SCHEMAS, services=PROBE_SERVICES)
    probe = Probe(settings)
    cancellations = []

    async def stubborn() -> None:
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                cancellations.append(1)
                if len(cancellations) > 1:
                    raise

    probe.service.loop(stubborn)
    async with TestApp(probe.service.app):
        await asyncio.sleep(0.5)
        stopping = asyncio.get_running_loop().time()
    assert asyncio.get_running_loop().time() - stopping < 5
    assert len(cancellations) == 2
