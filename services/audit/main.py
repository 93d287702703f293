"""Audit's wiring: the only place its parts meet."""

from pathlib import Path

from faststream import FastStream

from services.audit import handlers
from services.audit.config import AuditSettings
from services.audit.http import build_http
from services.audit.sealing import sealing_key, sealing_loop
from services.audit.store import PostgresAuditStore
from shared.events import EVENT_TYPES
from shared.messaging import with_delivery
from shared.service import Service
from shared.topology import AUDIT_EVENTS

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(settings: AuditSettings | None = None) -> FastStream:
    settings = settings or AuditSettings()
    service = Service("audit", settings, migrations=MIGRATIONS)
    # Every event type, each accepted only from its owner: a forged event would make a false history.
    service.consume(
        AUDIT_EVENTS,
        {event_type: with_delivery(handlers.on_event) for event_type in EVENT_TYPES.values()},
        store=PostgresAuditStore,
        prefetch=64,
    )
    service.loop(sealing_loop(lambda: service.pool, sealing_key(settings), settings))
    service.serve_http(settings.audit_port, lambda: build_http(lambda: service.pool, docs=settings.http_docs))
    return service.app
