"""Notifier's wiring: the only place its parts meet.

Three things run side by side and meet only in the database: the consumer
(handlers queue mail and keep the schedule), the reminder scheduler
(reminders and absence notices) and the sender (SMTP). ``clock`` is
injectable so tests can move time forward by days without waiting for them;
by default it is the services' clock (PARAAF_CLOCK_START).
"""

from collections.abc import Mapping, Sequence
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

from faststream import FastStream

from services.notifier import handlers
from services.notifier.config import NotifierSettings
from services.notifier.digests import DigestPolicy
from services.notifier.domain import ReminderPolicy
from services.notifier.links import LinkSource, SignerLinks
from services.notifier.render import MailRenderer
from services.notifier.scheduler import ReminderScheduler
from services.notifier.sender import MailSender, SmtpDelivery
from services.notifier.store import Directory, NotifierTransactions, PostgresNotifierStore, took_queued
from shared.clock import Clock, clock_from
from shared.contract import SendDownloadLink, SendSigningLink, SendSignInLink
from shared.delivery import Delivery
from shared.events import (
    DocumentCompleted,
    DocumentDeclined,
    DocumentWithdrawn,
    RoutingFailed,
    SignatureCancelled,
    SignatureReassigned,
    Signed,
)
from shared.http import base_app
from shared.messaging import BatchHandler, Batching, Handler
from shared.orgs import OrgPortals
from shared.service import Service
from shared.topology import NOTIFIER_EVENTS

__all__ = ["create_app"]

MIGRATIONS = Path(__file__).parent / "migrations"
# One transaction (BEGIN, inbox mark, COMMIT) and one ack per event cost more round trips than most handlers' own
# statements; what came while the last batch was written is written together. No wait: a lone event goes at once.
# A batch is at most what the broker hands the notifier at once: PARAAF_PREFETCH still bounds what it holds.
BATCH_WAIT = 0.0


def _mail_sender(
    service: Service, settings: NotifierSettings, transactions: NotifierTransactions, clock: Clock, links: LinkSource | None
) -> MailSender:
    """The sender with its link source (the signer's internal API unless given) and its SMTP sessions, both closed
    when the service stops."""
    if links is None:
        links = SignerLinks(settings.signer_internal_url, service.identity.signer_key)
        service.app.after_shutdown(links.aclose)
    smtp = SmtpDelivery(settings)
    service.app.after_shutdown(smtp.aclose)
    return MailSender(
        transactions,
        settings,
        clock=clock,
        after_commit=lambda: None,  # its transactions hand what they send to the relay themselves (NotifierTransactions)
        links=links,
        smtp=smtp,
        parallel=settings.mail_parallel,
        alone=transactions.alone,
    )


def create_app(
    settings: NotifierSettings | None = None, *, clock: Clock | None = None, links: LinkSource | None = None
) -> FastStream:
    settings = settings or NotifierSettings()
    clock = clock or clock_from(settings)
    service = Service("notifier", settings, migrations=MIGRATIONS)
    renderer, policy = MailRenderer(settings.timezone), reminder_policy(settings)
    transactions = NotifierTransactions(lambda: service.pool, service.outbox, unhanded=service.wake_relay)
    sender = _mail_sender(service, settings, transactions, clock, links)

    def queued() -> None:
        service.wake_relay()
        sender.wake()

    portals = OrgPortals(settings.org, settings.public_url)  # a digest's link goes to its person's own city's portal
    scheduler = ReminderScheduler(
        transactions,
        renderer,
        policy,
        notice_window=timedelta(seconds=settings.moved_notice_window_seconds),
        clock=clock,
        after_commit=queued,
        poll_seconds=settings.scheduler_seconds,
        digests=digest_policy(settings, portals),
    )
    handling = handlers_of(settings, renderer, policy, clock)  # each also handles alone a message whose batch failed
    directory = Directory()
    service.consume(
        NOTIFIER_EVENTS,
        handling,
        store=lambda conn: PostgresNotifierStore(conn, service.outbox, directory),
        after_commit=partial(_wake_if_queued, sender),  # what it sends, the consumer edge hands to the relay itself
        batching=Batching(in_order(handling), size=settings.prefetch, wait=BATCH_WAIT),
    )
    service.loop(sender.run)
    service.loop(scheduler.run)
    service.loop(lambda: portals.run(service.pool))
    service.serve_http(settings.notifier_port, lambda: base_app("notifier", lambda: service.pool, docs=settings.http_docs))
    return service.app


def _wake_if_queued(sender: MailSender) -> None:
    """After a message's commit: the sender is woken by a commit that queued mail only (a claim that finds nothing
    costs a statement: two of the 27 a one-signature document cost)."""
    if took_queued():
        sender.wake()


def digest_policy(settings: NotifierSettings, portals: OrgPortals | None = None) -> DigestPolicy:
    return DigestPolicy(
        threshold=settings.digest_threshold,
        list_url=settings.public_url.rstrip("/") + "/p/to-sign",
        hour=settings.digest_hour,
        timezone=settings.timezone,
        portal_of=portals.url_of if portals is not None else None,
    )


def reminder_policy(settings: NotifierSettings) -> ReminderPolicy:
    return ReminderPolicy(
        after=settings.reminder_after,
        every=settings.reminder_every,
        maximum=settings.reminder_max,
        due_after=settings.due_after,
        timezone=settings.timezone,
    )


def in_order(handlers: Mapping[type, Handler]) -> BatchHandler:
    """The messages of a batch, each by its own handler, in the order they came, in the batch's one transaction."""

    async def on_batch(messages: Sequence[tuple[Any, Delivery]], store: PostgresNotifierStore) -> None:
        for message, _ in messages:
            await handlers[type(message)](message, store)

    return on_batch


def handlers_of(settings: NotifierSettings, renderer: MailRenderer, policy: ReminderPolicy, clock: Clock) -> dict[type, Handler]:
    """Which handler takes each message the notifier consumes, with its dependencies."""
    closed = partial(handlers.on_request_closed, clock=clock)
    ended = partial(handlers.on_document_ended, clock=clock)
    return {
        SendSigningLink: partial(
            handlers.on_send_signing_link, renderer=renderer, policy=policy, clock=clock, digests=digest_policy(settings)
        ),
        SendDownloadLink: partial(handlers.on_send_download_link, renderer=renderer, clock=clock),
        SendSignInLink: partial(handlers.on_send_sign_in_link, renderer=renderer, clock=clock),
        Signed: closed,
        SignatureCancelled: closed,
        SignatureReassigned: closed,
        DocumentCompleted: ended,
        DocumentWithdrawn: ended,
        DocumentDeclined: partial(handlers.on_document_declined, renderer=renderer, clock=clock),
        RoutingFailed: partial(
            handlers.on_routing_failed,
            renderer=renderer,
            operators=settings.operators,
            language=settings.operator_language,
            clock=clock,
        ),
    }
