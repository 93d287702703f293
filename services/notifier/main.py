"""Notifier's wiring: the only place its parts meet."""

from datetime import UTC, datetime
from functools import partial
from pathlib import Path

from faststream import FastStream

from services.notifier import handlers
from services.notifier.config import NotifierSettings
from services.notifier.render import MailRenderer
from services.notifier.sender import MailSender
from shared.contract import SendSigningLink
from shared.http import base_app
from shared.service import Service
from shared.topology import COMMANDS, Binding, QueueSpec

QUEUE = QueueSpec("notifier.events", (Binding(COMMANDS, SendSigningLink.routing_key),))


def create_app(settings: NotifierSettings | None = None) -> FastStream:
    settings = settings or NotifierSettings()
    service = Service("notifier", settings, migrations=Path(__file__).parent / "migrations")
    sender = MailSender(
        lambda: service.pool, service.outbox, settings, clock=lambda: datetime.now(UTC), after_commit=service.wake_relay
    )

    def queued() -> None:
        service.wake_relay()
        sender.wake()

    renderer = MailRenderer()
    service.consume(
        QUEUE,
        {SendSigningLink.routing_key: partial(handlers.on_send_signing_link, renderer=renderer, timezone=settings.timezone)},
        after_commit=queued,
    )
    service.loop(sender.run)
    service.serve_http(settings.notifier_port, lambda: base_app("notifier", lambda: service.pool))
    return service.app
