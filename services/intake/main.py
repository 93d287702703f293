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
from shared.messaging import process, routing_key_of
from shared.service import Service
from shared.topology import EVENTS, INTAKE, Binding, QueueSpec

SUBMISSIONS = QueueSpec("intake.submissions", (Binding(INTAKE, "submit.*"),))
EVENTS_QUEUE = QueueSpec(
    "intake.events",
    tuple(
        Binding(EVENTS, e.routing_key)
        for e in (DocumentAccepted, DocumentRejected, DocumentCompleted, DocumentDeclined, DocumentWithdrawn)
    ),
)


def create_app(settings: IntakeSettings | None = None) -> FastStream:
    settings = settings or IntakeSettings()
    service = Service("intake", settings, migrations=Path(__file__).parent / "migrations", uses_blobs=True)
    service.hold(handlers.REJECTED_QUEUE)
    outbox = service.outbox
    max_pdf_bytes = int(settings.max_pdf_mb * 1_048_576)

    async def on_submission(msg: RabbitMessage) -> None:
        structlog.contextvars.clear_contextvars()
        submission = handlers.Submission(routing_key=routing_key_of(msg), body=msg.body)
        key = uuid5(NAMESPACE_URL, f"{msg.message_id}:{hashlib.sha256(msg.body).hexdigest()}")
        structlog.contextvars.bind_contextvars(event_id=str(key), routing_key=submission.routing_key)
        examined = await asyncio.to_thread(handlers.examine, submission, max_pdf_bytes=max_pdf_bytes)
        await process(
            msg,
            pool=service.pool,
            consumer=SUBMISSIONS.name,
            schema=service.schema,
            key=key,
            work=lambda conn: handlers.on_submission(examined, conn, outbox=outbox),
            after_commit=service.wake_relay,
        )

    service.subscribe(SUBMISSIONS, on_submission, prefetch=4)
    service.consume(
        EVENTS_QUEUE,
        {
            DocumentAccepted.routing_key: partial(handlers.on_document_accepted, outbox=outbox),
            DocumentRejected.routing_key: partial(handlers.on_document_rejected, outbox=outbox),
            DocumentCompleted.routing_key: partial(handlers.on_document_completed, outbox=outbox),
            DocumentDeclined.routing_key: partial(handlers.on_document_declined, outbox=outbox),
            DocumentWithdrawn.routing_key: partial(handlers.on_document_withdrawn, outbox=outbox),
        },
    )
    service.serve_http(settings.intake_port, lambda: build_http(lambda: service.pool))
    return service.app
