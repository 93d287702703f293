"""The notifier's handlers only queue mail; sender.py delivers it. A dead SMTP
server therefore never holds up an event."""

from datetime import datetime
from zoneinfo import ZoneInfo

import asyncpg

from services.notifier import store
from services.notifier.render import MailRenderer
from shared.contract import SendSigningLink

__all__ = ["on_send_signing_link"]


async def on_send_signing_link(
    command: SendSigningLink, conn: asyncpg.Connection, *, renderer: MailRenderer, timezone: str
) -> None:
    mail = renderer.render(
        command.kind if command.kind != "reassigned" else "request",
        command.recipient.language,
        recipient=command.recipient,
        on_behalf_of=command.on_behalf_of,
        submitted_by=command.submitted_by,
        title=command.title,
        step=command.step,
        step_count=command.step_count,
        action=command.action,
        link=command.link,
        expires=_local(command.expires_at, timezone),
    )
    await store.queue_mail(
        conn,
        mail_id=command.command_id,
        org=command.org,
        document_id=command.correlation_id,
        kind=f"signature_{command.kind}",
        recipient=command.recipient.email,
        mail=mail,
    )


def _local(moment: datetime, timezone: str) -> str:
    return moment.astimezone(ZoneInfo(timezone)).strftime("%d-%m-%Y %H:%M")
