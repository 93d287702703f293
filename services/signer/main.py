"""Signer's wiring: the only place its parts meet."""

import hashlib
import hmac
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

from faststream import FastStream

from services.signer import handlers
from services.signer.config import SignerSettings
from services.signer.http import SignerHttp, VerifyLimits, build_http
from services.signer.keys import Keyring, key_secret
from services.signer.pades import SigningPool, find_placeholders
from services.signer.render import RenderPool
from services.signer.signing import Stamping
from shared.contract import ReissueSigningLink
from shared.events import (
    DocumentCompleted,
    DocumentDeclined,
    DocumentWithdrawn,
    NotificationFailed,
    SignatureCancelled,
    SignatureReassigned,
    SignatureRequested,
)
from shared.service import Service
from shared.topology import SIGNER_EVENTS
from shared.workers import WorkerPool


def create_app(settings: SignerSettings | None = None) -> FastStream:
    settings = settings or SignerSettings()
    service = Service("signer", settings, migrations=Path(__file__).parent / "migrations", uses=("blobs", "access"))
    secret = key_secret(settings)
    keyring = Keyring(secret, settings.organisation_name)
    workers: list[SigningPool] = []
    renderers: list[RenderPool] = []
    verifiers: list[WorkerPool] = []

    async def start_workers() -> None:
        workers.append(SigningPool(settings.signing_workers))
        renderers.append(RenderPool(settings.render_workers))
        verifiers.append(WorkerPool(1))
        async with service.pool.acquire() as conn:
            await keyring.unlock(conn)
            await keyring.authority(conn, settings.org)  # the CA exists from the first start
        await workers[0].warm_up(settings.stamp_font)

    async def stop_workers() -> None:
        for pool in [*workers, *renderers, *verifiers]:
            pool.close()

    service.app.on_startup(start_workers)
    service.app.after_shutdown(stop_workers)
    links = handlers.Links(
        settings.public_url,
        timedelta(hours=settings.link_ttl_hours),
        lambda: datetime.now(UTC),
        download_ttl=timedelta(hours=settings.download_ttl_hours),
    )
    service.consume(
        SIGNER_EVENTS,
        {
            SignatureRequested: partial(
                handlers.on_signature_requested,
                outbox=service.outbox,
                keyring=keyring,
                links=links,
                find_placeholders=lambda pdf: workers[0].run(find_placeholders, pdf),
            ),
            ReissueSigningLink: partial(handlers.on_reissue_signing_link, outbox=service.outbox, links=links),
            SignatureCancelled: handlers.on_signature_cancelled,
            SignatureReassigned: handlers.on_signature_reassigned,
            DocumentCompleted: partial(handlers.on_document_completed, outbox=service.outbox, links=links),
            DocumentDeclined: handlers.on_document_ended,
            DocumentWithdrawn: handlers.on_document_ended,
            NotificationFailed: handlers.on_notification_failed,
        },
        store=lambda conn: conn,  # the handlers still take the connection itself
    )
    service.serve_http(
        settings.signer_port,
        lambda: build_http(
            SignerHttp(
                pool=lambda: service.pool,
                keyring=keyring,
                signing_pool=lambda: workers[0],
                render_pool=lambda: renderers[0],
                verify_pool=lambda: verifiers[0],
                outbox=service.outbox,
                csrf_secret=hmac.new(secret, b"paraaf-csrf", hashlib.sha256).digest(),
                stamping=Stamping(timezone=settings.timezone, tsa_url=settings.tsa_url, font_path=settings.stamp_font),
                links=links,
                org=settings.org,
                after_commit=service.wake_relay,
                secure_cookies=settings.public_https,
                docs=settings.http_docs,
                verify_limits=VerifyLimits(
                    max_bytes=int(settings.verify_max_mb * 1_048_576),
                    seconds=settings.verify_seconds,
                    per_minute=settings.verify_per_minute,
                ),
            )
        ),
    )
    return service.app
