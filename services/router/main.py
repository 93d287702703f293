"""Router's wiring: the only place its parts meet."""

from functools import partial
from pathlib import Path

from faststream import FastStream

from services.router import handlers
from services.router.config import RouterSettings
from services.router.directory import DirectoryCache
from services.router.http import RouterHttp, build_http
from services.router.scheduler import AbsenceScheduler
from shared.clock import clock_from
from shared.events import DocumentSubmitted, SignatureDeclined, Signed
from shared.service import Service
from shared.topology import ROUTER_EVENTS


def create_app(settings: RouterSettings | None = None) -> FastStream:
    settings = settings or RouterSettings()
    service = Service("router", settings, migrations=Path(__file__).parent / "migrations", uses=("access",))
    directories = DirectoryCache()
    clock = clock_from(settings)
    deps = {"outbox": service.outbox, "directories": directories, "clock": clock}
    service.consume(
        ROUTER_EVENTS,
        {
            DocumentSubmitted.routing_key: partial(handlers.on_document_submitted, **deps),
            Signed.routing_key: partial(handlers.on_signed, **deps),
            SignatureDeclined.routing_key: partial(handlers.on_signature_declined, outbox=service.outbox),
        },
    )
    scheduler = AbsenceScheduler(
        lambda: service.pool,
        database_url=service.identity.database_url,
        directories=directories,
        outbox=service.outbox,
        clock=clock,
        after_commit=service.wake_relay,
    )
    service.loop(scheduler.run)
    service.serve_http(
        settings.router_port,
        lambda: build_http(
            RouterHttp(
                pool=lambda: service.pool,
                outbox=service.outbox,
                timezone=settings.timezone,
                after_commit=service.wake_relay,
                docs=settings.http_docs,
            )
        ),
    )
    return service.app
