"""Intake's wiring: the only place its parts meet."""

from functools import partial

from faststream import FastStream

from services.intake import handlers
from services.intake.checks import SubmissionChecks
from services.intake.config import MIGRATIONS, IntakeSettings
from services.intake.http import build_http
from services.intake.pdf import Limits
from services.intake.store import PostgresIntakeStore
from shared.contract import SubmitDocument
from shared.events import DocumentAccepted, DocumentCompleted, DocumentDeclined, DocumentRejected, DocumentWithdrawn
from shared.messaging import with_delivery
from shared.service import Service
from shared.topology import INTAKE_EVENTS, INTAKE_SUBMISSIONS


def create_app(settings: IntakeSettings | None = None) -> FastStream:
    settings = settings or IntakeSettings()
    service = Service("intake", settings, migrations=MIGRATIONS, uses=("blobs",))
    store = lambda conn: PostgresIntakeStore(conn, service.outbox)  # noqa: E731
    checks = _checks(settings)
    service.app.on_startup(checks.start)
    service.app.after_shutdown(checks.close)
    limits = {"checks": checks, "prefix": settings.broker_user_prefix}
    service.consume(
        INTAKE_SUBMISSIONS,
        {SubmitDocument: with_delivery(partial(handlers.on_submit_document, **limits))},
        store=store,
        prefetch=4,
        key=handlers.submission_key,
        unaccepted=partial(handlers.on_unreadable_submission, **limits),
        max_body=checks.limits.max_body_bytes,
    )
    service.consume(
        INTAKE_EVENTS,
        {
            DocumentAccepted: handlers.on_document_accepted,
            DocumentRejected: handlers.on_document_rejected,
            DocumentCompleted: handlers.on_document_completed,
            DocumentDeclined: handlers.on_document_declined,
            DocumentWithdrawn: handlers.on_document_withdrawn,
        },
        store=store,
    )
    service.serve_http(settings.intake_port, lambda: build_http(lambda: service.pool, docs=settings.http_docs))
    return service.app


def _checks(settings: IntakeSettings) -> SubmissionChecks:
    limits = Limits(int(settings.max_pdf_mb * 1_048_576), int(settings.max_decoded_mb * 1_048_576))
    return SubmissionChecks(
        limits, workers=settings.pdf_check_workers, seconds=settings.pdf_check_seconds, memory_mb=settings.pdf_check_mb
    )
