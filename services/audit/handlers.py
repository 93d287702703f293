"""Audit's one handler: every event on ``esign.events``, whatever its type, joins the chain."""

import json
import uuid
from datetime import datetime

import asyncpg
import structlog

from services.audit import store
from shared.messaging import PermanentError

__all__ = ["envelope_of", "on_event"]


def envelope_of(body: bytes) -> dict:
    """The event as JSON, checked to carry the envelope; PermanentError when it does not."""
    try:
        event = json.loads(body)
        uuid.UUID(str(event["event_id"]))
        datetime.fromisoformat(str(event["occurred_at"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise PermanentError(f"not an event envelope: {exc!r}") from None
    return event


async def on_event(routing_key: str, event: dict, conn: asyncpg.Connection) -> None:
    seq = await store.append(conn, routing_key, event)
    structlog.get_logger().debug("event recorded", seq=seq)
