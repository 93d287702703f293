"""`paraaf broker setup` through RabbitMQ's management API, as for a broker on
another machine: the same users, permissions and topology as through
rabbitmqctl, and running it again changes nothing."""

import aio_pika
import aiormq
import httpx
import pytest

from services.admin.broker import ManagementApi, setup_broker, vhost_of
from services.admin.database import setup_database
from shared.credentials import read_identity, stored
from shared.topology import GROUP_SIZE, QUORUM_NODES, TOPOLOGY
from tests.conftest import admin_settings
from tests.support.session import MANAGEMENT_API as API
from tests.support.session import MANAGEMENT_BASE


async def test_setup_through_the_management_api_gives_each_service_only_its_own_rights(
    database_url: str, amqp_url: str, secrets_dir: str
) -> None:
    """Each service's user gets configure nothing, write only its exchanges and read only its queues; the router can
    read router.events and publish signature.requested, and is refused signature.signed; a second run keeps the passwords."""
    settings = admin_settings(database_url, amqp_url, secrets_dir)
    await setup_database(settings)
    await setup_broker(settings, TOPOLOGY, ManagementApi(API))
    first = {service: stored(settings, service)["amqp_url"] for service in ("router", "signer", "operator")}
    await setup_broker(settings, TOPOLOGY, ManagementApi(API))
    assert {service: stored(settings, service)["amqp_url"] for service in first} == first

    vhost = vhost_of(amqp_url)
    router = read_identity(settings, "router")
    async with httpx.AsyncClient(auth=("guest", "guest")) as client:
        permissions = (await client.get(f"{MANAGEMENT_BASE}/permissions/{vhost}/{router.broker_user}")).json()
        topics = (await client.get(f"{MANAGEMENT_BASE}/users/{router.broker_user}/topic-permissions")).json()
    assert (permissions["configure"], permissions["read"]) == ("^$", r"^(router\.events)$")
    assert permissions["write"] == r"^(esign\.dlx|esign\.events)$"
    events = next(t for t in topics if t["vhost"] == vhost and t["exchange"] == "esign.events")
    assert "signature\\.requested" in events["write"] and "signature\\.signed" not in events["write"]

    connection = await aio_pika.connect(router.amqp_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        await channel.declare_queue("router.events", passive=True)
        exchange = await channel.get_exchange("esign.events", ensure=False)
        await exchange.publish(aio_pika.Message(b"{}", user_id=router.broker_user), "signature.requested")
        with pytest.raises(aiormq.exceptions.ChannelAccessRefused):
            await exchange.publish(aio_pika.Message(b"{}", user_id=router.broker_user), "signature.signed")


async def test_the_operator_may_follow_esign_events_on_a_server_named_queue_and_create_nothing_else(
    database_url: str, amqp_url: str, secrets_dir: str
) -> None:
    """`paraaf tail`'s rights: the operator declares an exclusive server-named queue, binds it to esign.events and
    receives on it; declaring a named queue, or binding one to another exchange, is refused."""
    settings = admin_settings(database_url, amqp_url, secrets_dir)
    await setup_database(settings)
    await setup_broker(settings, TOPOLOGY, ManagementApi(API))
    operator = read_identity(settings, "operator", needs=("amqp_url",))
    connection = await aio_pika.connect(operator.amqp_url)
    async with connection:
        queue = await (await connection.channel()).declare_queue(exclusive=True, auto_delete=True)
        assert queue.name.startswith("amq.gen-")
        await queue.bind("esign.events", routing_key="signature.*")
        with pytest.raises(aiormq.exceptions.ChannelAccessRefused):
            await (await connection.channel()).declare_queue("operator.own", exclusive=True)
        channel = await connection.channel()
        other = await channel.declare_queue(exclusive=True, auto_delete=True)
        with pytest.raises(aiormq.exceptions.ChannelAccessRefused):
            await other.bind("esign.intake", routing_key="#")


async def test_setup_again_over_queues_an_earlier_version_declared_without_a_group_size_keeps_them(
    database_url: str, amqp_url: str, secrets_dir: str
) -> None:
    """Queues declared before they asked for three quorum members (RabbitMQ refuses to declare them again with the new
    argument) stay as they are, with what they hold, and setup completes; a new queue asks for three members."""
    settings = admin_settings(database_url, amqp_url, secrets_dir)
    await setup_database(settings)
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        spec = next(q for q in TOPOLOGY.queues if q.name == "router.events")
        before = {k: v for k, v in spec.arguments(settings.delivery_limit).items() if k != GROUP_SIZE}
        old = await channel.declare_queue(spec.name, durable=True, arguments=before)
        await channel.default_exchange.publish(aio_pika.Message(b"kept", delivery_mode=aio_pika.DeliveryMode.PERSISTENT), "router.events")
        await setup_broker(settings, TOPOLOGY, ManagementApi(API))
        async with httpx.AsyncClient(auth=("guest", "guest")) as client:
            queues = {q["name"]: q for q in (await client.get(f"{MANAGEMENT_BASE}/queues/{vhost_of(amqp_url)}")).json()}
        assert GROUP_SIZE not in queues[old.name]["arguments"]
        assert queues["signer.events"]["arguments"][GROUP_SIZE] == QUORUM_NODES
        channel = await connection.channel()
        message = await (await channel.declare_queue("router.events", passive=True)).get(timeout=5)
        assert message.body == b"kept"
        await message.ack()
