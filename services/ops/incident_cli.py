"""``paraaf incidents``: what needs a person, and ``paraaf incidents dismiss`` for one that needs nothing more
(published as ``incident.dismissed`` by the operator's broker user, so the audit log keeps who and why); and
``paraaf document resend``, which has the signer mail a still-open request again to the directory's address
(``signer.resend-mail``, from the operator's broker user: the only one the signer takes it from)."""

import asyncio
import json
from datetime import datetime
from typing import Annotated
from uuid import UUID

import aio_pika
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from services.dlq import depths
from services.ops.cli import _age, _reading
from services.ops.config import OpsSettings
from services.ops.incidents import Incident, incident_document, incidents_now, why_not_dismissed
from shared import amqp
from shared.clock import clock_from
from shared.contract import Command, ResendSigningMail
from shared.credentials import read_identity, shell_operator
from shared.events import Event, IncidentDismissed
from shared.names import COMMANDS_EXCHANGE, EVENTS_EXCHANGE, OPERATOR

__all__ = ["incidents_app", "resend"]

incidents_app = typer.Typer(help="What needs a person: list, and dismiss with a reason.", invoke_without_command=True)


BROKER_WAIT = 10.0  # seconds RabbitMQ gets to say how many dead letters each queue keeps


async def _queues(settings: OpsSettings) -> tuple[list[tuple[str, int | None]], str | None]:
    """Each dead-letter and holding queue's depth; none, and why, when the broker does not answer: the database's
    incidents are listed all the same (as the operators' page does), with a warning that the queues are not."""
    url = read_identity(settings, OPERATOR, needs=("amqp_url",)).amqp_url
    try:
        return await asyncio.wait_for(depths(url), BROKER_WAIT), None
    except (OSError, TimeoutError, aio_pika.exceptions.AMQPError) as exc:
        return [], f"RabbitMQ did not answer ({exc.__class__.__name__}: {exc}): dead letters are not listed"


async def _all(settings: OpsSettings, now: datetime) -> tuple[list[Incident], str | None]:
    queues, unasked = await _queues(settings)
    found = await _reading(
        settings, lambda conn: incidents_now(conn, now, queues, stuck_after=settings.stuck_after, timezone=settings.timezone)
    )
    return found, unasked


@incidents_app.callback()
def incidents(
    context: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON array, for scripts")] = False,
) -> None:
    """Every open incident: a request nobody can take, a mail that failed, a stuck document, dead letters."""
    if context.invoked_subcommand is not None:
        return
    settings = OpsSettings()
    now = clock_from(settings)()  # the services' clock, as the portal's incidents page
    found, unasked = asyncio.run(_all(settings, now))
    if unasked:
        typer.echo(f"Warning: {unasked}.", err=True)
    if as_json:
        typer.echo(
            json.dumps(
                [
                    {
                        **i.__dict__,
                        "document_id": str(i.document_id) if i.document_id else None,
                        "request_id": str(i.request_id) if i.request_id else None,
                        "since": i.since.isoformat() if i.since else None,
                    }
                    for i in found
                ],
                indent=2,
            )
        )
        return
    table = Table("incident", "document", "cause", "age", "fix")
    for i in found:
        table.add_row(
            escape(i.id), str(i.document_id or ""), escape(i.cause), _age(i.since, now) if i.since else "", escape(i.fix)
        )
    Console(width=200).print(table if found else "No open incidents.")


def _operator_name() -> str:
    return shell_operator()


async def _publish(settings: OpsSettings, message: Event | Command) -> None:
    """One persistent, confirmed message as the operator's broker user (RabbitMQ vouches for its user_id)."""
    operator = read_identity(settings, OPERATOR, needs=("amqp_url",))
    is_event = isinstance(message, Event)
    message_id = str(message.event_id if isinstance(message, Event) else message.command_id)
    connection = await amqp.connect(operator.amqp_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange(EVENTS_EXCHANGE if is_event else COMMANDS_EXCHANGE, ensure=False)
        body = message.to_json() if isinstance(message, Event) else message.model_dump_json().encode()
        await exchange.publish(
            aio_pika.Message(
                body,
                content_type="application/json",
                message_id=message_id,
                user_id=operator.broker_user,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            ),
            routing_key=message.routing_key,
        )


@incidents_app.command("dismiss")
def dismiss(
    incident: Annotated[str, typer.Argument(help="its id, as `paraaf incidents` lists it")],
    reason: Annotated[str, typer.Option(help="why nothing more is needed; kept in the audit log")],
) -> None:
    """Dismiss an open incident with a reason: it leaves the list; the audit log keeps who and why."""
    settings = OpsSettings()
    found = {i.id: i for i in asyncio.run(_all(settings, clock_from(settings)()))[0]}.get(incident)
    if found is None:
        typer.echo(f"No open incident `{incident}` (see `paraaf incidents`).", err=True)
        raise typer.Exit(1)
    if refused := why_not_dismissed(found):
        typer.echo(f"`{incident}` is not dismissed: {refused}", err=True)
        raise typer.Exit(1)
    event = IncidentDismissed(
        correlation_id=incident_document(found.id, found.document_id),
        org=settings.org,
        incident=found.id,
        dismissed_by=_operator_name(),
        reason=reason,
    )
    asyncio.run(_publish(settings, event))
    typer.echo(f"Dismissed {incident}; the audit log records it.")


_PENDING = "SELECT document_id, org, person->>'id' AS person FROM router.requests WHERE request_id = $1 AND status = 'pending'"


def resend(
    request_id: Annotated[UUID, typer.Argument(help="the request whose mail failed (from `paraaf incidents` or `paraaf trail`)")],
    reason: Annotated[str, typer.Option(help="why; it is in the trail with your name")],
) -> None:
    """Mail a waiting request again, to the address the directory holds now (mend it first with `paraaf directory
    import`): a fresh link; the earlier ones stop working."""
    settings = OpsSettings()
    found = asyncio.run(_reading(settings, lambda conn: conn.fetchrow(_PENDING, request_id)))
    if found is None:
        typer.echo(f"No waiting request {request_id}: it was signed, moved or ended (see `paraaf trail`).", err=True)
        raise typer.Exit(1)
    command = ResendSigningMail(
        correlation_id=found["document_id"],
        org=found["org"],
        request_id=request_id,
        resent_by=_operator_name(),
        reason=reason,
    )
    asyncio.run(_publish(settings, command))
    typer.echo(f"Asked the signer to mail request {request_id} again to {found['person']}'s address in the directory.")
