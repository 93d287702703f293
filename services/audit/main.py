"""Audit's wiring: the only place its parts meet."""

from functools import partial
from pathlib import Path

from faststream import FastStream

from services.audit import handlers
from services.audit.config import AuditSettings
from services.audit.http import build_http
from services.audit.sealing import sealing_certificate, sealing_key, sealing_loop
from services.audit.store import KnownHead, PostgresAuditStore
from shared.events import EVENT_TYPES
from shared.messaging import Batching, with_delivery
from shared.service import Service
from shared.topology import AUDIT_EVENTS

MIGRATIONS = Path(__file__).parent / "migrations"
# One transaction per event caps the log near 1,200 appends/s (bench/audit_burst.py); batches of up to 500 lift
# that. Gathered for 100 ms at most: at the pipeline's peak (~150 events/s) 20 ms made batches of ~3 events, each
# costing the same four round trips as a batch of 15; an entry is in the log at most 0.1 s later instead.
# Twice the batch in flight lets the next batch fill while one is written.
BATCHING = Batching(handlers.on_events, size=500, wait=0.1)


def create_app(settings: AuditSettings | None = None) -> FastStream:
    settings = settings or AuditSettings()
    service = Service("audit", settings, migrations=MIGRATIONS)
    # Every event type, each accepted only from its owner: a forged event would make a false history.
    # An event whose batch failed is recorded alone by on_event, with its own retries.
    service.consume(
        AUDIT_EVENTS,
        {event_type: with_delivery(handlers.on_event) for event_type in EVENT_TYPES.values()},
        store=partial(PostgresAuditStore, known=KnownHead()),
        prefetch=2 * BATCHING.size,
        batching=BATCHING,
    )
    key = sealing_key(settings)
    service.loop(sealing_loop(lambda: service.pool, key, settings, sealing_certificate(settings, key)))
    service.serve_http(settings.audit_port, lambda: build_http(lambda: service.pool, docs=settings.http_docs))
    return service.app
