"""An integrating system's side of the contract, as ``paraaf submit`` and ``paraaf demo`` play it: publish
SubmitDocument on ``esign.intake`` with the source's own broker user (persistent, confirmed), and read the
source's own queue ``outcomes.<source>`` for what became of each.

Outcomes of submissions this client did not send stay in the queue for the source's real system: they are
left unacknowledged and go back to the queue when the client closes, never consumed.
"""

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import unquote, urlsplit

import aio_pika
from pydantic import ValidationError

from shared import amqp
from shared.contract import Outcome
from shared.names import INTAKE_EXCHANGE, outcomes_queue_name

__all__ = ["FINAL", "Document", "SourceClient", "source_client", "source_of_url"]

FINAL = frozenset({"rejected", "completed", "declined", "withdrawn"})  # after these, nothing more comes for a document


@dataclass(frozen=True)
class Document:
    """One submission: what goes into SubmitDocument besides the source."""

    external_ref: str
    title: str
    pdf: bytes
    filename: str
    submitted_by: str
    flow: str | None = None
    steps: list[dict[str, Any]] | None = None
    confidential: bool = False
    language: str = "nl"
    metadata: dict[str, Any] = field(default_factory=dict)
    due_at: datetime | None = None


class SourceClient:
    def __init__(self, source: str, user: str, channel: aio_pika.abc.AbstractChannel) -> None:
        self.source = source
        self._user = user  # the broker checks it is the connection's: intake trusts the source it names
        self._channel = channel
        self._wanted: dict[str, asyncio.Queue[Outcome]] = {}

    async def submit(self, document: Document) -> None:
        """Publish one SubmitDocument; outcomes for its external_ref are collected from now on."""
        self._wanted.setdefault(document.external_ref, asyncio.Queue())
        body = {
            "source": self.source,
            "external_ref": document.external_ref,
            "title": document.title,
            "submitted_by": document.submitted_by,
            "confidential": document.confidential,
            "filename": document.filename,
            "pdf": base64.b64encode(document.pdf).decode(),
            "language": document.language,
            "metadata": document.metadata,
            **({"flow": document.flow} if document.flow else {"steps": document.steps}),
            **({"due_at": document.due_at.isoformat()} if document.due_at else {}),
        }
        exchange = await self._channel.get_exchange(INTAKE_EXCHANGE, ensure=False)
        message = aio_pika.Message(
            json.dumps(body).encode(), content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT, user_id=self._user,
        )
        await exchange.publish(message, routing_key=f"submit.{self.source}")

    async def next_outcome(self, external_ref: str) -> Outcome:
        """The next outcome for this external_ref (accepted, then completed, declined, ...)."""
        return await self._wanted.setdefault(external_ref, asyncio.Queue()).get()

    async def _on_outcome(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        try:
            outcome = Outcome.model_validate_json(message.body)
        except ValidationError:
            return  # not ours to judge: left for the source's real system
        wanted = self._wanted.get(outcome.external_ref or "")
        if wanted is None:
            return  # another submission's: it goes back to the queue when this client closes
        await message.ack()
        await wanted.put(outcome)


def source_of_url(amqp_url: str, prefix: str) -> str | None:
    """The source whose broker user is in ``amqp_url`` (``<prefix>.source.<source>``), or None."""
    user = unquote(urlsplit(amqp_url).username or "")
    marker = f"{prefix}.source."
    return user[len(marker) :] if user.startswith(marker) else None


@asynccontextmanager
async def source_client(amqp_url: str, source: str, *, follow_outcomes: bool = True) -> AsyncIterator[SourceClient]:
    """A connection as ``source`` (its own URL, from `paraaf sources add`), reading ``outcomes.<source>``."""
    connection = await amqp.connect(amqp_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        client = SourceClient(source, unquote(urlsplit(amqp_url).username or ""), channel)
        if follow_outcomes:
            await channel.set_qos(prefetch_count=1000)  # others' outcomes are held, not acked: leave room for ours
            queue = await channel.get_queue(outcomes_queue_name(source), ensure=False)
            await queue.consume(client._on_outcome)
        yield client
