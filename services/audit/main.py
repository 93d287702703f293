"""Audit's wiring: the only place its parts meet."""

import uuid
from pathlib import Path

import structlog
from faststream import FastStream
from faststream.rabbit.annotations import RabbitMessage

from services.audit import handlers
from services.audit.config import AuditSettings
from services.audit.http import build_http
from shared.messaging import UNTRUSTED, PermanentError, process, publisher_of, routing_key_of
from shared.service import Service
from shared.topology import AUDIT_EVENTS


def create_app(settings: AuditSettings | None = None) -> FastStream:
    settings = settings or AuditSettings()
    service = Service("audit", settings, migrations=Path(__file__).parent / "migrations")

    async def on_message(msg: RabbitMessage) -> None:
        structlog.contextvars.clear_contextvars()
        routing_key = routing_key_of(msg)
        log = structlog.get_logger().bind(routing_key=routing_key)
        if (publisher := publisher_of(msg)) not in service.trusted(routing_key):
            # Only what its owner published joins the log: a forged event would make a false history.
            log.warning(UNTRUSTED + "; dead-lettered", publisher=publisher)
            await service.dead_letters.park(msg, AUDIT_EVENTS.name, UNTRUSTED)
            return
        try:
            event = handlers.envelope_of(msg.body)
        except PermanentError as exc:
            log.error("malformed event dead-lettered", error=str(exc))
            await service.dead_letters.park(msg, AUDIT_EVENTS.name, str(exc))
            return
        structlog.contextvars.bind_contextvars(event_id=event["event_id"], document_id=event.get("correlation_id"))
        await process(
            msg,
            pool=service.pool,
            consumer=AUDIT_EVENTS.name,
            schema=service.schema,
            key=uuid.UUID(str(event["event_id"])),
            work=lambda conn: handlers.on_event(routing_key, event, conn),
            dead_letters=service.dead_letters,
        )

    service.subscribe(AUDIT_EVENTS, on_message, prefetch=64)
    service.serve_http(settings.audit_port, lambda: build_http(lambda: service.pool, docs=settings.http_docs))
    return service.app
