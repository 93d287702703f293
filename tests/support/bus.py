"""Publishing in a test as one of Paraaf's services would: with that service's
own broker user (from the secrets `paraaf setup` wrote) and ``user_id`` set,
persistent and confirmed — the only way a consumer accepts its messages."""

from urllib.parse import quote, urlsplit

import aio_pika
import httpx
from pydantic import BaseModel

from shared import amqp
from shared.credentials import read_identity
from shared.settings import Settings
from shared.topology import COMMANDS, EVENTS
from tests.support.session import MANAGEMENT_BASE

__all__ = ["consumer_prefetch", "publish_as", "publish_raw_as"]


async def publish_raw_as(
    settings: Settings, service: str, exchange: str, routing_key: str, body: bytes, **properties: object
) -> None:
    identity = read_identity(settings, service, needs=("amqp_url",))
    connection = await amqp.connect(identity.amqp_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        target = await channel.get_exchange(exchange, ensure=False)
        await target.publish(
            aio_pika.Message(
                body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT, user_id=identity.broker_user, **properties
            ),
            routing_key,
        )


async def publish_as(settings: Settings, service: str, *messages: BaseModel) -> None:
    """Each event or command on its exchange, as ``service``'s outbox relay publishes it (``message_id`` its id)."""
    for message in messages:
        exchange = EVENTS.name if hasattr(message, "event_id") else COMMANDS.name
        key = getattr(message, "event_id", None) or getattr(message, "command_id")  # noqa: B009 - one or the other
        await publish_raw_as(
            settings, service, exchange, message.routing_key, message.model_dump_json().encode(), message_id=str(key)  # type: ignore[attr-defined]
        )


async def consumer_prefetch(amqp_url: str) -> dict[str, list[int]]:
    """What RabbitMQ's management API says each queue's consumers are allowed unacknowledged (prefetch_count)."""
    vhost = quote(urlsplit(amqp_url).path[1:] or "/", safe="")
    async with httpx.AsyncClient(auth=("guest", "guest")) as client:
        response = await client.get(f"{MANAGEMENT_BASE}/consumers/{vhost}")
    found: dict[str, list[int]] = {}
    for consumer in response.raise_for_status().json():
        found.setdefault(consumer["queue"]["name"], []).append(consumer["prefetch_count"])
    return found
