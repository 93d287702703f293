"""Audit's wiring: the only place its parts meet."""

import uuid
from pathlib import Path

import structlog
from faststream import FastStream
from faststream.rabbit.annotations import RabbitMessage

from services.audit import handlers
from services.audit.config import AuditSettings
from services.audit.http import build_http
from shared.messaging import PermanentError, process, routing_key_of
from shared.service import Service
from shared.topology import EVENTS, Binding, QueueSpec

QUEUE = QueueSpec("audit.events", (Binding(EVENTS, "#"),))


def create_app(settings: AuditSettings | None = None) -> FastStream:
    settings = settings or AuditSettings()
    service = Service("audit", settings, migrations=Path(__file__).parent / "migrations")

    async def on_message(msg: RabbitMessage) -> None:
        structlog.contextvars.clear_contextvars()
        routing_key = routing_key_of(msg)
        try:
            event = handlers.envelope_of(msg.body)
        except PermanentError as exc:
            structlog.get_logger().error("malformed event dead-lettered", routing_key=routing_key, error=str(exc))
            await msg.reject(requeue=False)
            return
        structlog.contextvars.bind_contextvars(event_id=event["event_id"], document_id=event.get("correlation_id"))
        await process(
            msg,
            pool=service.pool,
            consumer=QUEUE.name,
            schema=service.schema,
            key=uuid.UUID(str(event["event_id"])),
            work=lambda conn: handlers.on_event(routing_key, event, conn),
        )

    service.subscribe(QUEUE, on_message, prefetch=64)
    service.serve_http(settings.audit_port, lambda: build_http(lambda: service.pool))
    return service.app
