"""Router's wiring: the only place its parts meet."""

from datetime import UTC, datetime
from functools import partial
from pathlib import Path

from faststream import FastStream

from services.router import handlers, store
from services.router.config import RouterSettings
from shared.events import DocumentSubmitted, SignatureDeclined, Signed
from shared.http import base_app
from shared.service import Service
from shared.topology import EVENTS, Binding, QueueSpec

QUEUE = QueueSpec(
    "router.events",
    tuple(Binding(EVENTS, e.routing_key) for e in (DocumentSubmitted, Signed, SignatureDeclined)),
)


def create_app(settings: RouterSettings | None = None) -> FastStream:
    settings = settings or RouterSettings()
    service = Service("router", settings, migrations=Path(__file__).parent / "migrations")
    deps = {"outbox": service.outbox, "directories": store.DirectoryCache(), "clock": lambda: datetime.now(UTC)}
    service.consume(
        QUEUE,
        {
            DocumentSubmitted.routing_key: partial(handlers.on_document_submitted, **deps),
            Signed.routing_key: partial(handlers.on_signed, **deps),
            SignatureDeclined.routing_key: partial(handlers.on_signature_declined, outbox=service.outbox),
        },
    )
    service.serve_http(settings.router_port, lambda: base_app("router", lambda: service.pool))
    return service.app
