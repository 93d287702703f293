"""``paraaf dlq``: what the dead-letter queues hold, and putting it back.

A message lands in ``<queue>.dlq`` when its handler failed past the delivery
limit, or at once when it can never be processed (malformed, or from a
publisher not allowed to send it). Once the cause is fixed, ``replay`` sends
the messages back to the queue they came from (handlers are idempotent, so
replaying twice is harmless), as their original publisher: the operator's
broker user may do that (RabbitMQ's ``impersonator`` tag), nobody else.

A message no queue was bound for waits in ``unrouted`` (the exchanges'
alternate exchange); ``replay unrouted`` publishes it again on the exchange
and routing key it was first published with. What is still unroutable comes
back to ``unrouted``.
"""

import asyncio
import json

import aio_pika
import typer
from rich.console import Console
from rich.table import Table

from shared.credentials import read_identity
from shared.messaging import REPLAYED_ROUTING_KEY
from shared.settings import Settings
from shared.topology import HOLDING_QUEUES, OPERATOR, TOPOLOGY

__all__ = ["QUEUES", "UNROUTED_QUEUE", "dlq_app", "replay", "replay_unrouted"]

QUEUES = tuple(q.name for q in TOPOLOGY.queues)
HOLDING = HOLDING_QUEUES
UNROUTED_QUEUE = "unrouted"

dlq_app = typer.Typer(help="Dead-letter queues: list and replay.", no_args_is_help=True)


async def _depths(url: str) -> list[tuple[str, int | None]]:
    connection = await aio_pika.connect(url)
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


async def replay(url: str, queue: str, limit: int | None = None) -> tuple[int, int]:
    """Move up to ``limit`` dead letters from ``<queue>.dlq`` back to ``queue``.

    Returns (replayed, kept). Messages a service put there on purpose rather
    than the broker dead-lettering a delivery (a mail that could not be
    delivered) are kept: replaying them would only dead-letter them again.
    """
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        dead = await channel.declare_queue(f"{queue}.dlq", passive=True)
        waiting = dead.declaration_result.message_count
        moved, kept = 0, []
        for _ in range(waiting if limit is None else min(waiting, limit)):
            message = await dead.get(fail=False, no_ack=False)
            if message is None:
                break
            if not _was_delivered(message):
                kept.append(message)
                continue
            headers = {k: v for k, v in (message.headers or {}).items() if not k.startswith("x-")}  # fresh delivery count
            headers[REPLAYED_ROUTING_KEY] = _original_routing_key(message)
            await channel.default_exchange.publish(_again(message, headers), routing_key=queue)
            await message.ack()
            moved += 1
        for message in kept:
            await message.nack(requeue=True)
        return moved, len(kept)


async def replay_unrouted(url: str, limit: int | None = None) -> int:
    """Publish up to ``limit`` messages of ``unrouted`` again where they were first published. Returns how many."""
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        held = await channel.declare_queue(UNROUTED_QUEUE, passive=True)
        waiting = held.declaration_result.message_count
        moved = 0
        for _ in range(waiting if limit is None else min(waiting, limit)):
            message = await held.get(fail=False, no_ack=False)
            if message is None:
                break
            exchange = await channel.get_exchange(message.exchange or "", ensure=False)
            await exchange.publish(_again(message, dict(message.headers or {})), routing_key=message.routing_key or "")
            await message.ack()
            moved += 1
        return moved


def _again(message: aio_pika.abc.AbstractIncomingMessage, headers: dict) -> aio_pika.Message:
    """The same message, persistent, from the same publisher."""
    return aio_pika.Message(
        message.body,
        headers=headers,
        content_type=message.content_type,
        message_id=message.message_id,
        user_id=message.user_id,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
    )


def _was_delivered(message: aio_pika.abc.AbstractIncomingMessage) -> bool:
    """Dead-lettered by the broker after failed deliveries, rather than parked on purpose with a reason."""
    return "x-death" in (message.headers or {})


def _original_routing_key(message: aio_pika.abc.AbstractIncomingMessage) -> str:
    """Where the message was first published: kept across replays, else the first death's routing key."""
    if REPLAYED_ROUTING_KEY in (message.headers or {}):
        return str(message.headers[REPLAYED_ROUTING_KEY])
    deaths = (message.headers or {}).get("x-death") or []
    keys = deaths[0].get("routing-keys") if deaths else None
    return str(keys[0]) if keys else message.routing_key or ""


def _operator_url() -> str:
    return read_identity(Settings(), OPERATOR, needs=("amqp_url",)).amqp_url


@dlq_app.command("list")
def list_queues() -> None:
    """How many messages each dead-letter and holding queue keeps."""
    table = Table("queue", "messages")
    for name, depth in asyncio.run(_depths(_operator_url())):
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
        typer.echo(json.dumps({"queue": queue, "replayed": asyncio.run(replay_unrouted(_operator_url(), limit))}))
        return
    if queue not in QUEUES:
        raise typer.BadParameter(
            f"`{queue}` is not a consuming queue; choose `unrouted` or one of {', '.join(QUEUES)}"
        )
    moved, kept = asyncio.run(replay(_operator_url(), queue, limit))
    typer.echo(json.dumps({"queue": queue, "replayed": moved, "kept": kept}))
