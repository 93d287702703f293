"""``paraaf dlq``: what the dead-letter queues hold, why, and putting it back or dropping it.

A message lands in ``<queue>.dlq`` when its handler failed on every try the
delivery limit allows (header ``x-paraaf-error`` keeps the last error), or at
once when it can never be processed (malformed, or from a publisher not
allowed to send it; header ``x-paraaf-reason`` says which). ``show`` prints
one dead letter with why it is there. Once the cause is fixed, ``replay``
sends the handler failures back to the queue they came from (handlers are
idempotent, so replaying twice is harmless), as their original publisher:
the operator's broker user may do that (RabbitMQ's ``impersonator`` tag),
nobody else. ``drop`` removes one dead letter for good and says so in the
audit log (event ``dead_letter.dropped``: who, which message, why).

A message no queue was bound for waits in ``unrouted`` (the exchanges'
alternate exchange); ``replay unrouted`` publishes it again on the exchange
and routing key it was first published with. What is still unroutable comes
back to ``unrouted``.
"""

import asyncio
import hashlib
import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import aio_pika
import typer
from rich.console import Console
from rich.table import Table

from shared import amqp
from shared.credentials import Identity, read_identity, shell_operator
from shared.events import DeadLetterDropped, DeadLetterReplayed
from shared.names import CONSUMING_QUEUES, ERROR, EVENTS_EXCHANGE, HOLDING_QUEUES, OPERATOR, REASON, REPLAYED_ROUTING_KEY
from shared.settings import Settings

__all__ = ["QUEUES", "UNROUTED_QUEUE", "depths", "describe", "dlq_app", "drop", "replay", "replay_unrouted", "show"]

T = TypeVar("T")
Held = list[aio_pika.abc.AbstractIncomingMessage]

QUEUES = CONSUMING_QUEUES
HOLDING = HOLDING_QUEUES
UNROUTED_QUEUE = "unrouted"

dlq_app = typer.Typer(help="Dead-letter queues: list, show, replay and drop.", no_args_is_help=True)


async def depths(url: str) -> list[tuple[str, int | None]]:
    """How many messages each dead-letter and holding queue keeps (None: not declared yet)."""
    connection = await amqp.connect(url)
    async with connection:
        depths = []
        for name in [f"{q}.dlq" for q in QUEUES] + list(HOLDING):
            channel = await connection.channel()
            try:
                queue = await channel.declare_queue(name, passive=True)
                depths.append((name, queue.declaration_result.message_count))
            except aio_pika.exceptions.ChannelClosed:
                depths.append((name, None))  # not declared yet: its service never started
        return depths


async def replay(operator: Identity, queue: str, limit: int | None = None, *, by: str) -> tuple[int, int]:
    """Move up to ``limit`` dead letters from ``<queue>.dlq`` back to ``queue``, each once ``dead_letter.replayed``
    naming ``by`` is confirmed (an unaudited replay cannot happen).

    Returns (replayed, kept). Messages a service put there on purpose rather
    than the broker dead-lettering a delivery (a mail that could not be
    delivered) are kept: replaying them would only dead-letter them again.
    """
    connection = await amqp.connect(operator.amqp_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        events = await channel.get_exchange(EVENTS_EXCHANGE, ensure=False)
        dead = await channel.declare_queue(f"{queue}.dlq", passive=True)
        waiting = dead.declaration_result.message_count
        moved, kept = 0, []
        for _ in range(waiting if limit is None else min(waiting, limit)):
            message = await dead.get(fail=False, no_ack=False)
            if message is None:
                break
            if not _replayable(message):
                kept.append(message)
                continue
            await _audit_replay(events, operator, f"{queue}.dlq", message, by)
            headers = {k: v for k, v in (message.headers or {}).items() if not k.startswith("x-")}  # fresh delivery count
            headers[REPLAYED_ROUTING_KEY] = _original_routing_key(message)
            await channel.default_exchange.publish(_again(message, headers, _publisher(message) or None), routing_key=queue)
            await message.ack()
            moved += 1
        for message in kept:
            await message.nack(requeue=True)
        return moved, len(kept)


async def replay_unrouted(operator: Identity, limit: int | None = None, *, by: str) -> int:
    """Publish up to ``limit`` messages of ``unrouted`` again where they were first published, each audited as
    ``dead_letter.replayed`` naming ``by``. Returns how many."""
    connection = await amqp.connect(operator.amqp_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        events = await channel.get_exchange(EVENTS_EXCHANGE, ensure=False)
        held = await channel.declare_queue(UNROUTED_QUEUE, passive=True)
        waiting = held.declaration_result.message_count
        moved = 0
        for _ in range(waiting if limit is None else min(waiting, limit)):
            message = await held.get(fail=False, no_ack=False)
            if message is None:
                break
            await _audit_replay(events, operator, UNROUTED_QUEUE, message, by)
            exchange = await channel.get_exchange(message.exchange or "", ensure=False)
            await exchange.publish(_again(message, dict(message.headers or {})), routing_key=message.routing_key or "")
            await message.ack()
            moved += 1
        return moved


async def _audit_replay(
    events: aio_pika.abc.AbstractExchange, operator: Identity, queue: str, message: aio_pika.abc.AbstractIncomingMessage, by: str
) -> None:
    event = DeadLetterReplayed(
        correlation_id=_concerns(message), queue=queue, message_id=str(message.message_id),
        original_routing_key=_original_routing_key(message), publisher=_publisher(message),
        dead_lettered_because=_why(dict(message.headers or {}))[:2000],
        body_sha256=hashlib.sha256(message.body).hexdigest(), replayed_by=by,
    )
    await events.publish(_event_message(event, operator.broker_user), routing_key=event.routing_key)


def _again(message: aio_pika.abc.AbstractIncomingMessage, headers: dict, publisher: str | None = None) -> aio_pika.Message:
    """The same message, persistent, from the same publisher."""
    return aio_pika.Message(
        message.body,
        headers=headers,
        content_type=message.content_type,
        message_id=message.message_id,
        user_id=publisher or message.user_id,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
    )


def _replayable(message: aio_pika.abc.AbstractIncomingMessage) -> bool:
    """Its handler failed (the consumer kept the error, or the broker dead-lettered it past the delivery limit),
    rather than parked on purpose because it can never be processed (untrusted, malformed, a mail refused for good)."""
    headers = message.headers or {}
    return ERROR in headers or "x-death" in headers


def _publisher(message: aio_pika.abc.AbstractIncomingMessage) -> str:
    """Who first published it: a consumer that parked it kept that in a header (it published the dead letter itself)."""
    headers = message.headers or {}
    return str(headers["x-paraaf-publisher"] if "x-paraaf-publisher" in headers else message.user_id or "")


def _original_routing_key(message: aio_pika.abc.AbstractIncomingMessage) -> str:
    """Where the message was first published: kept across replays, else the first death's routing key."""
    if REPLAYED_ROUTING_KEY in (message.headers or {}):
        return str(message.headers[REPLAYED_ROUTING_KEY])
    deaths = (message.headers or {}).get("x-death") or []
    keys = deaths[0].get("routing-keys") if deaths else None
    return str(keys[0]) if keys else message.routing_key or ""


def dead_letter_queue(queue: str) -> str:
    """Where ``queue``'s dead letters are: ``router.events`` -> ``router.events.dlq``; holding queues are their own."""
    if queue in QUEUES:
        return f"{queue}.dlq"
    if queue in HOLDING or queue.removesuffix(".dlq") in QUEUES:
        return queue
    raise typer.BadParameter(f"`{queue}` holds no dead letters; choose one of {', '.join([*QUEUES, *HOLDING])}")


async def _holding(url: str, queue: str, work: Callable[[aio_pika.abc.AbstractChannel, Held], Awaitable[T]]) -> T:
    """``work(channel, messages)`` with every message of ``queue`` taken (unacknowledged); what it did not ack goes back."""
    connection = await amqp.connect(url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        held: Held = []
        source = await channel.declare_queue(queue, passive=True)
        while (message := await source.get(fail=False, no_ack=False)) is not None:
            held.append(message)
        try:
            return await work(channel, held)
        finally:
            for message in held:
                if not message.processed:
                    await message.nack(requeue=True)


def _find(held: Held, message_id: str) -> aio_pika.abc.AbstractIncomingMessage | None:
    return next((m for m in held if m.message_id == message_id), None)


def _why(headers: dict[str, Any]) -> str:
    """Why a message is a dead letter: the reason a consumer gave, or the broker's (e.g. ``delivery_limit``)."""
    if REASON in headers:
        return str(headers[REASON]) + (f" ({headers[ERROR]})" if ERROR in headers else "")
    deaths = headers.get("x-death") or []
    return f"dead-lettered by the broker: {deaths[0].get('reason')}" if deaths else "unknown (no reason recorded)"


def describe(queue: str, message: aio_pika.abc.AbstractIncomingMessage) -> dict[str, Any]:
    """One dead letter as an operator reads it: what it is, who sent it, why it is here, and its body."""
    headers = dict(message.headers or {})
    return {
        "queue": queue,
        "message_id": message.message_id,
        "routing_key": _original_routing_key(message),
        "publisher": _publisher(message),
        "reason": _why(headers),
        "error": headers.get(ERROR),
        "replayable": _replayable(message),
        "headers": {k: v for k, v in headers.items()},
        "body": message.body.decode("utf-8", errors="replace"),
    }


async def show(url: str, queue: str, message_id: str) -> dict[str, Any] | None:
    """The dead letter ``message_id`` of ``queue`` (a dead-letter or holding queue), left where it is."""

    async def look(_: aio_pika.abc.AbstractChannel, held: Held) -> dict[str, Any] | None:
        found = _find(held, message_id)
        return describe(queue, found) if found else None

    return await _holding(url, queue, look)


def _concerns(message: aio_pika.abc.AbstractIncomingMessage) -> uuid.UUID:
    """The document a dead letter is about when its body names one; else its own id, as a UUID."""
    try:
        return uuid.UUID(str(json.loads(message.body)["correlation_id"]))
    except (ValueError, KeyError, TypeError):
        pass
    try:
        return uuid.UUID(str(message.message_id))
    except ValueError:
        return uuid.uuid5(uuid.NAMESPACE_URL, f"paraaf:dead-letter:{message.message_id}")


def dropped(queue: str, message: aio_pika.abc.AbstractIncomingMessage, by: str, reason: str) -> DeadLetterDropped:
    return DeadLetterDropped(
        correlation_id=_concerns(message), queue=queue, message_id=str(message.message_id),
        original_routing_key=_original_routing_key(message), publisher=_publisher(message),
        dead_lettered_because=_why(dict(message.headers or {}))[:2000],
        body_sha256=hashlib.sha256(message.body).hexdigest(), dropped_by=by, reason=reason,
    )


async def drop(operator: Identity, queue: str, message_id: str, *, by: str, reason: str) -> DeadLetterDropped | None:
    """Remove the dead letter ``message_id`` from ``queue`` for good, once ``dead_letter.dropped`` saying so is
    confirmed by the broker (an unaudited drop cannot happen; a failed ack leaves it there, dropped again later)."""

    async def remove(channel: aio_pika.abc.AbstractChannel, held: Held) -> DeadLetterDropped | None:
        found = _find(held, message_id)
        if found is None:
            return None
        event = dropped(queue, found, by, reason)
        exchange = await channel.get_exchange(EVENTS_EXCHANGE, ensure=False)
        await exchange.publish(_event_message(event, operator.broker_user), routing_key=event.routing_key)
        await found.ack()
        return event

    return await _holding(operator.amqp_url, queue, remove)


def _event_message(event: DeadLetterDropped | DeadLetterReplayed, user_id: str) -> aio_pika.Message:
    return aio_pika.Message(
        event.to_json(), content_type="application/json", message_id=str(event.event_id), user_id=user_id,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
    )


def _operator() -> Identity:
    return read_identity(Settings(), OPERATOR, needs=("amqp_url",))


def _operator_url() -> str:
    return _operator().amqp_url


def _who() -> str:
    return shell_operator()


@dlq_app.command("list")
def list_queues() -> None:
    """How many messages each dead-letter and holding queue keeps."""
    table = Table("queue", "messages")
    for name, depth in asyncio.run(depths(_operator_url())):
        table.add_row(name, "not declared" if depth is None else str(depth))
    Console().print(table)


@dlq_app.command("replay")
def replay_command(
    queue: str = typer.Argument(..., help="the consuming queue, e.g. router.events, or `unrouted`"),
    limit: int = typer.Option(None, help="at most this many messages"),
) -> None:
    """Send what QUEUE's dead-letter queue holds back to QUEUE; `unrouted`: publish what it holds again where it was
    first published (what is still unroutable comes back to `unrouted`)."""
    if queue == UNROUTED_QUEUE:
        typer.echo(json.dumps({"queue": queue, "replayed": asyncio.run(replay_unrouted(_operator(), limit, by=_who()))}))
        return
    if queue not in QUEUES:
        raise typer.BadParameter(
            f"`{queue}` is not a consuming queue; choose `unrouted` or one of {', '.join(QUEUES)}"
        )
    moved, kept = asyncio.run(replay(_operator(), queue, limit, by=_who()))
    typer.echo(json.dumps({"queue": queue, "replayed": moved, "kept": kept}))


@dlq_app.command("show")
def show_command(
    queue: str = typer.Argument(..., help="the consuming queue (its .dlq is read), or `unrouted`, `intake.rejected`"),
    message_id: str = typer.Argument(..., help="the message's id (message_id), as `paraaf dlq show` or the logs give it"),
) -> None:
    """Print one dead letter: its routing key, publisher, why it is there (for a failed handler, its last error)
    and its body. The message stays where it is."""
    found = asyncio.run(show(_operator_url(), dead_letter_queue(queue), message_id))
    if found is None:
        typer.echo(f"no message with id {message_id} in {dead_letter_queue(queue)}", err=True)
        raise typer.Exit(1)
    typer.echo(json.dumps(found, indent=2, default=str, ensure_ascii=False))


@dlq_app.command("drop")
def drop_command(
    queue: str = typer.Argument(..., help="the consuming queue (its .dlq), or `unrouted`, `intake.rejected`"),
    message_id: str = typer.Argument(..., help="the message's id (message_id)"),
    reason: str = typer.Option(..., help="why it is dropped, for the audit log"),
) -> None:
    """Remove one dead letter for good; the audit log records who dropped which message and why."""
    event = asyncio.run(drop(_operator(), dead_letter_queue(queue), message_id, by=_who(), reason=reason))
    if event is None:
        typer.echo(f"no message with id {message_id} in {dead_letter_queue(queue)}", err=True)
        raise typer.Exit(1)
    typer.echo(json.dumps({"queue": event.queue, "dropped": event.message_id, "audit_event": str(event.event_id)}))
