"""Audit's use cases: every event on ``esign.events`` that its owner published
joins the chain, as published (fields the audit does not know are kept); and
the whole chain can be checked."""

import json

import structlog

from services.audit.chain import Break, verify_chain
from services.audit.store import AuditStore
from shared.events import Event
from shared.messaging import Delivery

__all__ = ["on_event", "verify"]


async def on_event(event: Event, store: AuditStore, delivery: Delivery) -> None:
    seq = await store.append(event.routing_key, json.loads(delivery.body))
    structlog.get_logger().debug("event recorded", seq=seq)


async def verify(store: AuditStore) -> tuple[int, Break | None]:
    """Walk the whole chain: (entries checked, first break or None)."""
    rows = [row async for row in store.rows()]
    return len(rows), verify_chain(rows, await store.head())
