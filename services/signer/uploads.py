"""What a person uploads in the portal enters Paraaf the way every system's
submission does: a SubmitDocument on ``esign.intake`` with routing key
``submit.portal``, published as the portal source's own broker user (so intake
applies the same checks and the same source rules), persistent and confirmed.
``paraaf setup`` registers the source and gives the signer its credentials.
"""

import asyncio
import base64
import json

import aio_pika
from aio_pika.abc import AbstractRobustConnection

from shared import amqp
from shared.names import INTAKE_EXCHANGE

__all__ = ["PORTAL_SOURCE", "PortalSubmitter", "UploadsClosed", "portal_external_ref"]

PORTAL_SOURCE = "portal"


class UploadsClosed(RuntimeError):
    """The portal has no broker credentials of its source: uploads are not switched on here."""


def portal_external_ref(form_id: str) -> str:
    """The reference intake keeps an upload under: one per upload form, so sending the form twice is one document."""
    return f"portal-{form_id}"


def _message_body(command: dict) -> bytes:
    return json.dumps({**command, "pdf": base64.b64encode(command["pdf"]).decode()}).encode()


class PortalSubmitter:
    """Publishes uploads as source ``portal``, over one connection opened when first needed."""

    def __init__(self, amqp_url: str | None, broker_user: str) -> None:
        self._url = amqp_url
        self._user = broker_user
        self._connection: AbstractRobustConnection | None = None
        self._lock = asyncio.Lock()

    @property
    def open(self) -> bool:
        return self._url is not None

    async def _channel(self) -> aio_pika.abc.AbstractChannel:
        if self._url is None:
            raise UploadsClosed("no broker credentials for source `portal`; run `paraaf setup`")
        async with self._lock:
            if self._connection is None or self._connection.is_closed:
                self._connection = await amqp.connect_robust(self._url, timeout=10)
        return await self._connection.channel(publisher_confirms=True, on_return_raises=True)

    async def submit(self, command: dict, message_id: str) -> None:
        """Publish one SubmitDocument (``pdf`` as bytes); returns when the broker confirmed it was routed and kept."""
        body = await asyncio.to_thread(_message_body, command)  # tens of MB of base64: not on the event loop
        channel = await self._channel()
        try:
            exchange = await channel.get_exchange(INTAKE_EXCHANGE, ensure=False)
            await exchange.publish(
                aio_pika.Message(
                    body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT, user_id=self._user, message_id=message_id,
                    content_type="application/json",
                ),
                f"submit.{PORTAL_SOURCE}", mandatory=True, timeout=30,
            )
        finally:
            await channel.close()

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.close()
