"""Signer's wiring: the only place its parts meet."""

import hashlib
import hmac
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

from faststream import FastStream

from services.signer import handlers
from services.signer.config import SignerSettings
from services.signer.http import SignerHttp, build_http
from services.signer.keys import Keyring, key_secret
from services.signer.pades import SigningPool
from shared.events import DocumentCompleted, DocumentDeclined, DocumentWithdrawn, SignatureCancelled, SignatureRequested
from shared.service import Service
from shared.topology import EVENTS, Binding, QueueSpec

QUEUE = QueueSpec(
    "signer.events",
    tuple(
        Binding(EVENTS, e.routing_key)
        for e in (SignatureRequested, SignatureCancelled, DocumentCompleted, DocumentDeclined, DocumentWithdrawn)
    ),
)


def create_app(settings: SignerSettings | None = None) -> FastStream:
    settings = settings or SignerSettings()
    service = Service("signer", settings, migrations=Path(__file__).parent / "migrations", uses_blobs=True)
    secret = key_secret(settings)
    keyring = Keyring(secret, settings.organisation_name)
    workers: list[SigningPool] = []

    async def start_workers() -> None:
        workers.append(SigningPool(settings.signing_workers))
        async with service.pool.acquire() as conn:
            await keyring.authority(conn, settings.org)  # the CA exists from the first start

    async def stop_workers() -> None:
        for pool in workers:
            pool.close()

    service.app.on_startup(start_workers)
    service.app.after_shutdown(stop_workers)
    ended = handlers.on_document_ended
    service.consume(
        QUEUE,
        {
            SignatureRequested.routing_key: partial(
                handlers.on_signature_requested,
                outbox=service.outbox,
                keyring=keyring,
                public_url=settings.public_url,
                link_ttl=timedelta(hours=settings.link_ttl_hours),
                clock=lambda: datetime.now(UTC),
            ),
            SignatureCancelled.routing_key: handlers.on_signature_cancelled,
            DocumentCompleted.routing_key: ended,
            DocumentDeclined.routing_key: ended,
            DocumentWithdrawn.routing_key: ended,
        },
    )
    service.serve_http(
        settings.signer_port,
        lambda: build_http(
            SignerHttp(
                pool=lambda: service.pool,
                keyring=keyring,
                signing_pool=lambda: workers[0],
                outbox=service.outbox,
                csrf_secret=hmac.new(secret, b"paraaf-csrf", hashlib.sha256).digest(),
                timezone=settings.timezone,
                org=settings.org,
                after_commit=service.wake_relay,
            )
        ),
    )
    return service.app
