"""Publishing in a test as one of Paraaf's services would: with that service's
own broker user (from the secrets `paraaf setup` wrote) and ``user_id`` set,
persistent and confirmed — the only way a consumer accepts its messages."""

import aio_pika
from pydantic import BaseModel

from shared.credentials import read_identity
from shared.settings import Settings
from shared.topology import COMMANDS, EVENTS

__all__ = ["publish_as", "publish_raw_as"]


async def publish_raw_as(
    settings: Settings, service: str, exchange: str, routing_key: str, body: bytes, **properties: object
) -> None:
    identity = read_identity(settings, service, needs=("amqp_url",))
    connection = await aio_pika.connect(identity.amqp_url)
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
