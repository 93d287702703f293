"""Signer's wiring: the only place its parts meet."""

import hashlib
import hmac
from datetime import timedelta
from functools import partial

import asyncpg
from faststream import FastStream

from services.dlq import depths
from services.signer import handlers
from services.signer.check import CheckLimits
from services.signer.config import MIGRATIONS, SignerSettings
from services.signer.domain import Links
from services.signer.hsm import token_config
from services.signer.http import PortalConfig, SignerHttpDeps, VerifyLimits, build_http
from services.signer.keys import Keyring, key_secret
from services.signer.live import AuditFeed
from services.signer.oidc import OidcClient, OidcConfig
from services.signer.pades import SigningPool, find_placeholders
from services.signer.recent import RecentBlobs
from services.signer.render import RenderPool
from services.signer.sessions import SessionPolicy
from services.signer.signing import Stamping
from services.signer.store import PostgresSignerStore
from services.signer.uploads import PORTAL_SOURCE, PortalSubmitter
from services.signer.verification import code_key
from shared.clock import clock_from
from shared.contract import ReissueSigningLink, ResendSigningMail
from shared.credentials import stored
from shared.events import (
    DocumentCompleted,
    DocumentDeclined,
    DocumentWithdrawn,
    NotificationFailed,
    SignatureCancelled,
    SignatureReassigned,
    SignatureRequested,
)
from shared.orgs import OrgPortals
from shared.service import Service
from shared.topology import SIGNER_EVENTS, source_user
from shared.workers import WorkerPool


class Workers:
    """The signer's worker processes (signing, rendering pages, verifying), started with the app."""

    def __init__(self, settings: SignerSettings) -> None:
        self._settings = settings
        self._pools: dict[str, SigningPool | RenderPool | WorkerPool] = {}

    def signing(self) -> SigningPool:
        return self._pools["signing"]  # type: ignore[return-value]

    def render(self) -> RenderPool:
        return self._pools["render"]  # type: ignore[return-value]

    def verify(self) -> WorkerPool:
        return self._pools["verify"]  # type: ignore[return-value]

    async def start(self) -> None:
        self._pools.update(
            signing=SigningPool(self._settings.signing_workers), render=RenderPool(
                self._settings.render_workers, seconds=self._settings.render_seconds, memory_mb=self._settings.render_mb
            ), verify=WorkerPool(1, preload=("services.signer.verify",))
        )

    async def warm_up(self) -> None:
        await self.signing().warm_up(self._settings.stamp_font, token_config(self._settings))

    async def stop(self) -> None:
        for pool in self._pools.values():
            pool.close()


def _links(settings: SignerSettings, portals: OrgPortals) -> Links:
    return Links(
        settings.public_url,
        timedelta(hours=settings.link_ttl_hours),
        clock_from(settings),
        download_ttl=timedelta(hours=settings.download_ttl_hours),
        portal_of=portals.url_of,
    )


def _consume(service: Service, keyring: Keyring, links: Links, workers: Workers, recent: RecentBlobs) -> None:
    found = partial(handlers.on_signature_requested, links=links, find_placeholders=lambda pdf: workers.signing().run(find_placeholders, pdf))
    service.consume(
        SIGNER_EVENTS,
        {
            SignatureRequested: found,
            ReissueSigningLink: partial(handlers.on_reissue_signing_link, links=links),
            ResendSigningMail: partial(handlers.on_resend_signing_mail, links=links),
            SignatureCancelled: handlers.on_signature_cancelled,
            SignatureReassigned: handlers.on_signature_reassigned,
            DocumentCompleted: partial(handlers.on_document_completed, links=links),
            DocumentDeclined: handlers.on_document_ended,
            DocumentWithdrawn: handlers.on_document_ended,
            NotificationFailed: handlers.on_notification_failed,
        },
        store=lambda conn: PostgresSignerStore(conn, service.outbox, keyring, recent),
    )


def _stamping(settings: SignerSettings, secret: bytes) -> Stamping:
    return Stamping(
        timezone=settings.timezone, tsa_url=settings.tsa_url, font_path=settings.stamp_font,
        tsa_roots_der=settings.tsa_roots_der(),
        check_url=settings.public_url.rstrip("/") + "/check", check_key=code_key(secret),
    )


def _http_deps(
    settings: SignerSettings, service: Service, keyring: Keyring, links: Links, workers: Workers, secret: bytes, feed: AuditFeed,
    portals: OrgPortals, recent: RecentBlobs,
) -> SignerHttpDeps:
    return SignerHttpDeps(
        pool=lambda: service.pool, keyring=keyring, signing_pool=workers.signing, render_pool=workers.render,
        verify_pool=workers.verify, outbox=service.outbox,
        csrf_secret=hmac.new(secret, b"paraaf-csrf", hashlib.sha256).digest(),
        stamping=_stamping(settings, secret), check_limits=CheckLimits(
            per_address=settings.check_per_address, overall=settings.check_overall,
            window=timedelta(minutes=settings.check_window_minutes),
        ),
        links=links, org=settings.org, portals=portals, after_commit=service.wake_relay, secure_cookies=settings.public_https,
        docs=settings.http_docs, stuck_after=settings.stuck_after, audit_feed=feed,
        queue_depths=lambda: depths(service.identity.amqp_url),
        verify_limits=VerifyLimits(
            max_bytes=int(settings.verify_max_mb * 1_048_576), seconds=settings.verify_seconds, per_minute=settings.verify_per_minute
        ),
        recent_blobs=recent,
    )


def _portal(settings: SignerSettings) -> PortalConfig:
    """The portal's sign-in (OIDC when configured), session limits, and its way into intake."""
    oidc = None
    if settings.oidc_configured:
        oidc = OidcClient(OidcConfig(
            issuer=settings.oidc_issuer or "", client_id=settings.oidc_client_id or "",
            client_secret=settings.oidc_client_secret.get_secret_value() if settings.oidc_client_secret else "",
            redirect_uri=settings.public_url.rstrip("/") + "/p/auth/callback", claim=settings.oidc_claim,
        ))
    submitter = PortalSubmitter(
        stored(settings, "signer").get("portal_amqp_url"), source_user(settings.broker_user_prefix, PORTAL_SOURCE)
    )
    return PortalConfig(
        oidc=oidc, oidc_match=settings.oidc_match, submitter=submitter,
        sessions=SessionPolicy(timedelta(minutes=settings.session_idle_minutes), timedelta(hours=settings.session_hours)),
        upload_max_bytes=int(settings.upload_max_mb * 1_048_576),
    )


def create_app(settings: SignerSettings | None = None) -> FastStream:
    settings = settings or SignerSettings()
    service = Service("signer", settings, migrations=MIGRATIONS, uses=("blobs", "access"))
    secret = key_secret(settings)
    keyring = Keyring(secret, settings.organisation_name, settings.public_url, token=token_config(settings))
    portals = OrgPortals(settings.org, settings.public_url)
    links, workers = _links(settings, portals), Workers(settings)
    recent = RecentBlobs()  # one for the handlers and the pages: what one writes, the other reads next

    async def start() -> None:
        await workers.start()
        async with service.pool.acquire() as conn:
            await keyring.unlock(conn)
            await keyring.authority(conn, settings.org)  # the CA exists from the first start
            await portals.refresh(conn)
        await workers.warm_up()

    service.app.on_startup(start)
    portal = _portal(settings)
    service.app.after_shutdown(workers.stop)
    service.app.after_shutdown(portal.submitter.close)
    _consume(service, keyring, links, workers, recent)
    feed = AuditFeed(lambda: asyncpg.connect(service.identity.database_url))  # one listener for every live stream
    service.loop(feed.run)
    service.loop(lambda: portals.run(service.pool))
    service.serve_http(
        settings.signer_port, lambda: build_http(_http_deps(settings, service, keyring, links, workers, secret, feed, portals, recent), portal)
    )
    return service.app
