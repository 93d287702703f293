"""Operator commands of the router: ``paraaf directory``, ``flows``, ``absence`` and ``document``.

Each opens the database as the router's own role, the way the router starts
(``open_database``), and runs in one transaction on the router's store; what
it publishes goes through the router's outbox, so the running router sends it
(and its absence scheduler is woken by NOTIFY).
"""

import asyncio
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import TypeVar
from uuid import UUID

import typer
from rich.console import Console
from rich.table import Table

from services.router import directory, handlers
from services.router.config import RouterSettings
from services.router.directory import DirectoryCache
from services.router.domain import Change, FlowDefinition, ImportRefused
from services.router.importer import parse_moment, read_directory, read_flows, read_workbook
from services.router.store import PostgresRouterStore
from shared import orgs
from shared.credentials import shell_operator
from shared.db import open_database
from shared.errors import CodedError
from shared.outbox import Outbox

__all__ = ["absence_app", "directory_app", "document_app", "flows_app", "import_directory_file", "load_flow_folder"]

directory_app = typer.Typer(help="The organogram: people, roles, substitutes, absences, groups.", no_args_is_help=True)
flows_app = typer.Typer(help="Signing flows, one YAML file per document type.", no_args_is_help=True)
absence_app = typer.Typer(help="Absences: who is away when (their work moves to substitutes).", no_args_is_help=True)
document_app = typer.Typer(help="Documents under way.", no_args_is_help=True)
MIGRATIONS = Path(__file__).parent / "migrations"
T = TypeVar("T")


async def in_router_transaction(
    settings: RouterSettings, work: Callable[[PostgresRouterStore], Awaitable[T]], *, commit: bool = True, org: str | None = None
) -> T:
    """``work`` on the router's store in one transaction, as the router's own role (rolled back unless ``commit``);
    refused with UnknownOrg when ``org`` is given and no ``paraaf org create`` made it."""
    pool = await open_database(settings, "router", migrations=MIGRATIONS)
    try:
        async with pool.acquire() as conn:
            transaction = conn.transaction()
            await transaction.start()
            try:
                if org is not None:
                    await orgs.require_org(conn, org)
                result = await work(PostgresRouterStore(conn, Outbox("router")))
            except BaseException:
                await transaction.rollback()
                raise
            await (transaction.commit() if commit else transaction.rollback())
            return result
    finally:
        await pool.close()


def _in_transaction(work: Callable[[PostgresRouterStore], Awaitable[T]], *, commit: bool = True) -> T:
    return asyncio.run(in_router_transaction(RouterSettings(), work, commit=commit))


async def import_directory_file(
    settings: RouterSettings, source: Path, org: str | None = None, *, dry_run: bool = False
) -> dict[str, Change]:
    """The directory in ``source`` imported for ``org``: all of it, or nothing (ImportRefused names every problem)."""
    read = read_directory(read_workbook(source), settings.timezone)
    return await in_router_transaction(
        settings, lambda store: directory.import_directory(store, org or settings.org, read), commit=not dry_run,
        org=org or settings.org,
    )


async def load_flow_folder(settings: RouterSettings, folder: Path, org: str | None = None) -> list[FlowDefinition]:
    """Every flow file in ``folder`` added or replaced for ``org``, checked against its directory."""

    async def load(store: PostgresRouterStore) -> list[FlowDefinition]:
        flows = read_flows(folder, await store.load_directory(org or settings.org))
        for flow in flows:
            await store.save_flow(org or settings.org, flow)
        return flows

    return await in_router_transaction(settings, load, org=org or settings.org)


def _fail(console: Console, error: ImportRefused) -> None:
    console.print(f"[red]Nothing imported: {len(error.problems)} problem(s).[/red]")
    for problem in error.problems:
        console.print(f"  {problem}", markup=False)
    raise typer.Exit(1)


def _unknown(console: Console, unknown: orgs.UnknownOrg) -> None:
    console.print(f"[red]Nothing imported: {unknown}[/red]", highlight=False)
    raise typer.Exit(1)


@directory_app.command("import")
def import_directory(
    source: Path = typer.Argument(..., exists=True, help=".xlsx file, .yaml file or folder of .csv files"),
    org: str = typer.Option(None, help="organisation key (default: PARAAF_ORG)"),
    dry_run: bool = typer.Option(False, "--dry-run", help="check and report, change nothing"),
) -> None:
    """Import the directory: all of it, or nothing when a row is bad."""
    console = Console()
    try:
        summary = asyncio.run(import_directory_file(RouterSettings(), source, org, dry_run=dry_run))
    except ImportRefused as error:
        _fail(console, error)
    except orgs.UnknownOrg as unknown:
        _unknown(console, unknown)
    verb = "Would import" if dry_run else "Imported"
    for kind, change in summary.items():
        console.print(f"{verb} {kind}: {change.added} added, {change.changed} changed, {change.removed} removed")


@flows_app.command("load")
def load_flows(
    folder: Path = typer.Argument(..., exists=True, file_okay=False, help="folder of flow .yaml files"),
    org: str = typer.Option(None, help="organisation key (default: PARAAF_ORG)"),
) -> None:
    """Load (add or replace) every flow in FOLDER, checked against the directory."""
    console = Console()
    try:
        flows = asyncio.run(load_flow_folder(RouterSettings(), folder, org))
    except ImportRefused as error:
        _fail(console, error)
    except orgs.UnknownOrg as unknown:
        _unknown(console, unknown)
    console.print(f"Loaded {len(flows)} flow(s): {', '.join(f.key for f in flows)}")


@absence_app.command("add")
def add_absence(
    person: str = typer.Argument(..., help="person id"),
    starts: str = typer.Option(..., "--from", help="first day away: 2026-07-01, 01/07/2026 or 2026-07-01T14:00"),
    ends: str = typer.Option(..., "--to", help="first day back (exclusive)"),
    note: str = typer.Option("", help="shown to operators"),
) -> None:
    """Register an absence; open requests move to substitutes when it starts."""
    settings = RouterSettings()
    try:
        starts_at, ends_at = parse_moment(starts, settings.timezone), parse_moment(ends, settings.timezone)
    except ValueError:
        raise typer.BadParameter("--from and --to must be dates like 2026-07-01 or 01/07/2026") from None
    try:
        absence_id = _in_transaction(lambda store: directory.add_absence(store, settings.org, person, starts_at, ends_at, note=note))
    except (directory.UnknownPerson, ValueError) as exc:
        typer.echo(f"Not added: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"Absence {absence_id}: {person} away from {starts_at:%Y-%m-%d %H:%M} until {ends_at:%Y-%m-%d %H:%M}")


@absence_app.command("list")
def list_absences(person: str = typer.Argument(None, help="only this person")) -> None:
    """Absences, oldest first."""
    settings = RouterSettings()
    table = Table("id", "person", "from", "to", "source", "applied", "note")
    for stored in _in_transaction(lambda store: store.absences(settings.org, person), commit=False):
        a = stored.absence
        table.add_row(
            str(stored.id), a.person_id, f"{a.starts_at:%Y-%m-%d %H:%M}", f"{a.ends_at:%Y-%m-%d %H:%M}",
            stored.source, "yes" if stored.applied_at else "", stored.note,
        )
    Console().print(table)


@absence_app.command("remove")
def remove_absence(absence_id: UUID = typer.Argument(..., help="id from `paraaf absence list`")) -> None:
    """Remove an absence (work it already moved stays where it went)."""
    settings = RouterSettings()
    if not _in_transaction(lambda store: store.remove_absence(settings.org, absence_id)):
        typer.echo(f"No absence {absence_id}", err=True)
        raise typer.Exit(1)
    typer.echo(f"Removed absence {absence_id}")


@document_app.command("withdraw")
def withdraw(
    document_id: UUID = typer.Argument(...),
    reason: str = typer.Option(..., help="told to the source system"),
    by: str = typer.Option(None, help="the submitter's person id, or operator:<name> (default: operator:$USER@host)"),
    org: str = typer.Option(None, help="organisation key (default: PARAAF_ORG)"),
) -> None:
    """Withdraw a document: cancel its open requests and tell its source."""
    settings = RouterSettings()
    who = by or shell_operator()
    try:
        _in_transaction(lambda store: handlers.withdraw(store, document_id, org=org or settings.org, by=who, reason=reason))
    except CodedError as refusal:
        typer.echo(f"Not withdrawn: {refusal.reason}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"Withdrawn: {document_id}")


@document_app.command("reassign")
def reassign_request(
    request_id: UUID = typer.Argument(..., help="the request that waits (from `paraaf trail` or a routing.unresolved alert)"),
    to: str = typer.Option(..., help="the person id who takes it over"),
    reason: str = typer.Option(..., help="why; it is in the trail and the new signer's request"),
    org: str = typer.Option(None, help="organisation key (default: PARAAF_ORG)"),
) -> None:
    """Move a waiting request to another person: she gets a new request and link, the old link stops working (410)."""
    settings = RouterSettings()
    who = shell_operator()
    work = partial(handlers.reassign_by_operator, request_id=request_id, target=to, org=org or settings.org, by=who, why=reason,
                   directories=DirectoryCache())
    try:
        new = _in_transaction(work)
    except CodedError as refusal:
        typer.echo(f"Not reassigned: {refusal.reason}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"Reassigned to {to}: new request {new.request_id} (the old link no longer works)")
