"""Router's wiring: the only place its parts meet."""

from functools import partial
from pathlib import Path

from faststream import FastStream

from services.router import handlers
from services.router.config import RouterSettings
from services.router.directory import DirectoryCache
from services.router.http import RouterApiDeps, build_http
from services.router.metrics import request_gauges
from services.router.scheduler import AbsenceScheduler
from services.router.store import PostgresRouterStore
from shared.clock import clock_from
from shared.contract import ReassignRequest, RegisterAbsence, WithdrawDocument
from shared.events import DocumentSubmitted, SignatureDeclined, Signed
from shared.messaging import with_delivery
from shared.service import Service
from shared.topology import ROUTER_EVENTS, broker_user

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(settings: RouterSettings | None = None) -> FastStream:
    settings = settings or RouterSettings()
    service = Service("router", settings, migrations=MIGRATIONS, uses=("access",))
    directories, clock = DirectoryCache(), clock_from(settings)
    service.consume(
        ROUTER_EVENTS,
        {
            DocumentSubmitted: partial(handlers.on_document_submitted, directories=directories, clock=clock),
            Signed: partial(handlers.on_signed, directories=directories, clock=clock),
            SignatureDeclined: handlers.on_signature_declined,
            WithdrawDocument: with_delivery(partial(
                handlers.on_withdraw_document, directories=directories, intake_user=broker_user(settings.broker_user_prefix, "intake")
            )),
            RegisterAbsence: handlers.on_register_absence,
            ReassignRequest: partial(handlers.on_reassign_request, directories=directories),
        },
        store=lambda conn: PostgresRouterStore(conn, service.outbox),
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
    service.scrape(request_gauges(lambda: service.pool, settings.stuck_after, settings.timezone))
    api = RouterApiDeps(lambda: service.pool, service.outbox, settings.timezone, service.wake_relay, settings.http_docs)
    service.serve_http(settings.router_port, lambda: build_http(api))
    return service.app
