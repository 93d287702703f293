"""Intake's wiring: the only place its parts meet."""

from collections.abc import Callable
from datetime import timedelta
from functools import partial

import asyncpg
from faststream import FastStream

from services.intake import handlers
from services.intake.checks import SubmissionChecks
from services.intake.config import MIGRATIONS, IntakeSettings
from services.intake.http import build_http
from services.intake.pdf import Limits
from services.intake.store import PostgresIntakeStore
from services.intake.webhooks import Backoff, WebhookSender
from shared.contract import QueryStatus, SubmitDocument, WithdrawSubmission
from shared.events import DocumentAccepted, DocumentCompleted, DocumentDeclined, DocumentRejected, DocumentWithdrawn
from shared.messaging import with_delivery
from shared.service import Service
from shared.topology import INTAKE_EVENTS, INTAKE_REQUESTS, INTAKE_SUBMISSIONS


def create_app(settings: IntakeSettings | None = None) -> FastStream:
    settings = settings or IntakeSettings()
    service = Service("intake", settings, migrations=MIGRATIONS, uses=("blobs", "access"))
    store: Callable[[asyncpg.Connection], PostgresIntakeStore] = lambda conn: PostgresIntakeStore(conn, service.outbox)  # noqa: E731
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
    _consume_requests(service, store)
    _consume_events(service, store)
    service.loop(_webhooks(service, settings).run)
    service.serve_http(
        settings.intake_port,
        lambda: build_http(lambda: service.pool, store=store, checks=checks, after_commit=service.wake_relay, docs=settings.http_docs),
    )
    return service.app


def _consume_requests(service: Service, store: Callable[[asyncpg.Connection], PostgresIntakeStore]) -> None:
    service.consume(
        INTAKE_REQUESTS,
        {
            WithdrawSubmission: with_delivery(handlers.on_withdraw_submission),
            QueryStatus: with_delivery(handlers.on_query_status),
        },
        store=store,
        key=handlers.submission_key,
        unaccepted=handlers.on_unreadable_request,
        max_body=1_048_576,
    )


def _consume_events(service: Service, store: Callable[[asyncpg.Connection], PostgresIntakeStore]) -> None:
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


def _webhooks(service: Service, settings: IntakeSettings) -> WebhookSender:
    backoff = Backoff(
        settings.webhook_first_retry_seconds, settings.webhook_longest_retry_seconds, timedelta(hours=settings.webhook_retry_hours)
    )
    return WebhookSender(
        lambda: service.pool, service.outbox, backoff, timeout=settings.webhook_timeout_seconds,
        poll_seconds=settings.webhook_poll_seconds, after_commit=service.wake_relay, allow_http=settings.webhook_allow_http,
    )


def _checks(settings: IntakeSettings) -> SubmissionChecks:
    limits = Limits(int(settings.max_pdf_mb * 1_048_576), int(settings.max_decoded_mb * 1_048_576))
    return SubmissionChecks(
        limits, workers=settings.pdf_check_workers, seconds=settings.pdf_check_seconds, memory_mb=settings.pdf_check_mb,
        link_ttl=timedelta(hours=settings.link_ttl_hours),
    )
