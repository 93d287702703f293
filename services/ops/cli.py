"""The operator's read-only commands: ``paraaf documents``, ``paraaf trail`` and ``paraaf tail``.

``documents`` and ``trail`` read the router's, intake's and the audit log's
schemas with the administrator's database URL (PARAAF_DATABASE_URL), like
the other operator commands that look across services; ``tail`` listens on
esign.events as the operator's broker user, like ``paraaf dlq``.
"""

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Annotated, TypeVar

import asyncpg
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from services.ops.config import OpsSettings
from services.ops.documents import DocumentRow, Filters, Trail, listed, read_documents, read_trail, resolve
from services.ops.rules import STATUSES, local_time, parse_age, summary
from services.ops.tail import Seen, follow, line
from shared.clock import clock_from
from shared.credentials import read_identity
from shared.db import connect_pool
from shared.names import OPERATOR

__all__ = ["documents", "tail", "trail"]

T = TypeVar("T")
_COLOURS = {"document": "cyan", "signature": "green", "notification": "blue", "routing": "red", "dead_letter": "magenta"}


async def _reading(settings: OpsSettings, work: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
    """``work`` in one read-only transaction, so a listing is one consistent moment across the schemas."""
    pool = await connect_pool(settings.database_url, max_size=1)
    try:
        async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
            return await work(conn)
    finally:
        await pool.close()


def _age(created: datetime, now: datetime) -> str:
    minutes = int((now - created).total_seconds() // 60)
    days, hours = minutes // 1440, minutes % 1440 // 60
    return f"{days}d {hours}h" if days else (f"{hours}h {minutes % 60}m" if hours else f"{minutes}m")


def _table(rows: list[DocumentRow], now: datetime) -> Table:
    table = Table("id", "source/ref", "title", "department", "status", "waiting on", "age")
    for row in rows:
        colour = {"stuck": "red", "waiting": "yellow", "completed": "green"}.get(row.status, "white")
        table.add_row(
            str(row.document_id), escape(f"{row.source or '-'}/{row.ref or '-'}"), escape(row.title),
            escape(row.department or ""), f"[{colour}]{row.status}[/{colour}]", escape(", ".join(row.waiting_on)),
            _age(row.created_at, now),
        )
    return table


def documents(
    status: Annotated[str | None, typer.Option(help="waiting, completed, declined, withdrawn or stuck")] = None,
    source: Annotated[str | None, typer.Option(help="the sending system")] = None,
    ref: Annotated[str | None, typer.Option(help="the sending system's reference")] = None,
    department: Annotated[str | None, typer.Option()] = None,
    waiting_on: Annotated[str | None, typer.Option(help="a person's id, or part of her name")] = None,
    older_than: Annotated[str | None, typer.Option(help="submitted longer ago than this: 12h, 3d, 2w")] = None,
    org: Annotated[str | None, typer.Option(help="only this organisation's documents (default: every one)")] = None,
    limit: Annotated[int, typer.Option(min=1, help="at most this many, the newest (a city's year is ~50,000)")] = 1000,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON array, for scripts")] = False,
) -> None:
    """Documents with their status and whom they wait on; `stuck`: waiting longer than PARAAF_STUCK_AFTER working days."""
    if status is not None and status not in STATUSES:
        raise typer.BadParameter(f"`{status}` is not a status; choose one of {', '.join(STATUSES)}", param_hint="--status")
    try:
        age = parse_age(older_than) if older_than else None
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--older-than") from None
    settings = OpsSettings()
    now = clock_from(settings)()  # the services' clock: what the portal's documents page counts from
    if status == "stuck":  # stuck means waiting over N working days, so submitted over N days ago: the limit keeps those
        age = max(age or timedelta(0), timedelta(days=settings.stuck_after))
    filters = Filters(status, source, ref, department, waiting_on, age)
    records = asyncio.run(_reading(settings, lambda conn: read_documents(conn, filters, now, org, newest=limit + 1)))
    more = len(records) > limit
    records = records[-limit:] if more else records
    rows = listed(records, filters, now, stuck_after=settings.stuck_after, timezone=settings.timezone)
    if as_json:
        typer.echo(json.dumps([row.as_json(now) for row in rows], ensure_ascii=False, indent=2))
    else:
        Console().print(_table(rows, now))
    if more:
        typer.echo(f"Only the newest {limit} documents were read: narrow the filters, or raise --limit.", err=True)


async def _trail_of(conn: asyncpg.Connection, document: str) -> Trail | None:
    found = await resolve(conn, document)
    return await read_trail(conn, found) if found else None


def _trail_json(trail: Trail, timezone: str) -> str:
    steps = [
        {"at": local_time(e["occurred_at"], timezone), "event": key, "what": summary(key, e), "event_id": e.get("event_id")}
        for key, e in trail.steps
    ]
    return json.dumps({"document_id": str(trail.document_id), "title": trail.title, "steps": steps}, ensure_ascii=False, indent=2)


def trail(
    document: Annotated[str, typer.Argument(help="a document id, or SOURCE/REF as the sending system knows it")],
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object, for scripts")] = False,
) -> None:
    """Every step of one document from the audit log, in order, in local time (PARAAF_TIMEZONE)."""
    settings = OpsSettings()
    found = asyncio.run(_reading(settings, lambda conn: _trail_of(conn, document)))
    if found is None:
        typer.echo(f"No document `{document}`: give a document id or SOURCE/REF (see `paraaf documents`).", err=True)
        raise typer.Exit(1)
    if as_json:
        typer.echo(_trail_json(found, settings.timezone))
        return
    console = Console()
    console.print(f"[bold]{found.document_id}[/bold]  {escape(found.title)}")
    for key, event in found.steps:
        when, _, _, what = line(Seen(key, event), settings.timezone)
        console.print(f"{when}  [{_colour(key)}]{key:<22}[/{_colour(key)}] {escape(what)}")


def _colour(routing_key: str) -> str:
    return "red" if routing_key.endswith(("declined", "failed", "rejected", "unresolved")) else _COLOURS.get(
        routing_key.split(".")[0], "white"
    )


class _Sources:
    """Which source sent a document, looked up once per document (events other than document.submitted do not say)."""

    def __init__(self, pool: asyncpg.Pool | None) -> None:
        self._pool = pool
        self._known: dict[str, str | None] = {}

    async def of(self, seen: Seen) -> str | None:
        document = str(seen.event.get("correlation_id"))
        if document not in self._known and self._pool is not None:
            self._known[document] = seen.event.get("source") or await self._pool.fetchval(
                "SELECT source FROM intake.documents WHERE document_id = $1::uuid", document
            )
        return self._known.get(document)


def _printer(
    console: Console, timezone: str, document: str | None, source: str | None, sources: _Sources
) -> Callable[[Seen], Awaitable[None]]:
    async def show(seen: Seen) -> None:
        if document and not str(seen.event.get("correlation_id", "")).startswith(document.lower()):
            return
        if source and await sources.of(seen) != source:
            return
        when, key, short, what = line(seen, timezone)
        console.print(f"{when} [{_colour(key)}]{key:<22}[/{_colour(key)}] {short} {escape(what)}")
        console.file.flush()  # one line at a time, also into a pipe

    return show


async def _tail(settings: OpsSettings, pattern: str, document: str | None, source: str | None) -> None:
    url = read_identity(settings, OPERATOR, needs=("amqp_url",)).amqp_url
    pool = await connect_pool(settings.database_url, max_size=1) if source else None
    errors = Console(stderr=True)
    try:
        show = _printer(Console(), settings.timezone, document, source, _Sources(pool))
        ready = lambda: errors.print(f"following esign.events `{pattern}`; Ctrl-C stops", style="dim")  # noqa: E731
        await follow(url, pattern, show, ready=ready)
    finally:
        if pool is not None:
            await pool.close()


def tail(
    type_: Annotated[str, typer.Option("--type", help="routing keys to follow: `signature.*`, `document.#`")] = "#",
    document: Annotated[str | None, typer.Option(help="only this document (its id, or the start of it)")] = None,
    source: Annotated[str | None, typer.Option(help="only documents of this sending system")] = None,
) -> None:
    """Follow esign.events live, one coloured line per event; Ctrl-C stops."""
    try:
        asyncio.run(_tail(OpsSettings(), type_, document, source))
    except KeyboardInterrupt:
        pass
