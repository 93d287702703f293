"""Intake's wiring: the only place its parts meet."""

import asyncio
import hashlib
from functools import partial
from pathlib import Path
from uuid import NAMESPACE_URL, uuid5

import structlog
from faststream import FastStream
from faststream.rabbit.annotations import RabbitMessage

from services.intake import handlers
from services.intake.config import IntakeSettings
from services.intake.http import build_http
from shared.events import DocumentAccepted, DocumentCompleted, DocumentDeclined, DocumentRejected, DocumentWithdrawn
from shared.messaging import UNTRUSTED, process, publisher_of, routing_key_of
from shared.service import Service
from shared.topology import INTAKE_EVENTS, INTAKE_SUBMISSIONS, source_of_user

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(settings: IntakeSettings | None = None) -> FastStream:
    settings = settings or IntakeSettings()
    service = Service("intake", settings, migrations=MIGRATIONS, uses=("blobs",))
    outbox = service.outbox
    max_pdf_bytes = int(settings.max_pdf_mb * 1_048_576)

    async def on_submission(msg: RabbitMessage) -> None:
        structlog.contextvars.clear_contextvars()
        routing_key = routing_key_of(msg)
        publisher = publisher_of(msg)
        source = source_of_user(settings.broker_user_prefix, publisher)
        if publisher is not None and (source is None or routing_key != f"submit.{source}"):
            # Someone who is not this source's user published for it: no answer goes out in its name.
            structlog.get_logger().warning(UNTRUSTED + "; dead-lettered", publisher=publisher, routing_key=routing_key)
            await service.dead_letters.park(msg, INTAKE_SUBMISSIONS.name, UNTRUSTED)
            return
        submission = handlers.Submission(routing_key=routing_key, body=msg.body, publisher=source)
        key = uuid5(NAMESPACE_URL, f"{msg.message_id}:{hashlib.sha256(msg.body).hexdigest()}")
        structlog.contextvars.bind_contextvars(event_id=str(key), routing_key=routing_key)
        examined = await asyncio.to_thread(handlers.examine, submission, max_pdf_bytes=max_pdf_bytes)
        await process(
            msg,
            pool=service.pool,
            consumer=INTAKE_SUBMISSIONS.name,
            schema=service.schema,
            key=key,
            work=lambda conn: handlers.on_submission(examined, conn, outbox=outbox),
            dead_letters=service.dead_letters,
            after_commit=service.wake_relay,
        )

    service.subscribe(INTAKE_SUBMISSIONS, on_submission, prefetch=4)
    service.consume(
        INTAKE_EVENTS,
        {
            DocumentAccepted.routing_key: partial(handlers.on_document_accepted, outbox=outbox),
            DocumentRejected.routing_key: partial(handlers.on_document_rejected, outbox=outbox),
            DocumentCompleted.routing_key: partial(handlers.on_document_completed, outbox=outbox),
            DocumentDeclined.routing_key: partial(handlers.on_document_declined, outbox=outbox),
            DocumentWithdrawn.routing_key: partial(handlers.on_document_withdrawn, outbox=outbox),
        },
    )
    service.serve_http(settings.intake_port, lambda: build_http(lambda: service.pool, docs=settings.http_docs))
    return service.app
