"""Operator commands of the router: ``paraaf directory ...`` and ``paraaf flows ...``."""

import asyncio
from dataclasses import asdict
from pathlib import Path

import asyncpg
import typer
from rich.console import Console

from services.router import store
from services.router.config import RouterSettings
from services.router.domain import Directory, FlowDefinition
from services.router.importer import ImportError_, read_directory, read_flows, read_workbook
from shared.db import connect_pool, ensure_database, migrate

__all__ = ["directory_app", "flows_app"]

directory_app = typer.Typer(help="The organogram: people, roles (functions and mandates).", no_args_is_help=True)
flows_app = typer.Typer(help="Signing flows, one YAML file per document type.", no_args_is_help=True)
MIGRATIONS = Path(__file__).parent / "migrations"


async def _pool(settings: RouterSettings) -> asyncpg.Pool:
    await ensure_database(settings.database_url)
    pool = await connect_pool(settings.database_url, max_size=2)
    await migrate(pool, "router", [MIGRATIONS])
    return pool


async def apply_directory(conn: asyncpg.Connection, org: str, directory: Directory) -> dict[str, dict[str, int]]:
    """Make the stored directory of ``org`` equal ``directory``; count what changed."""
    summary: dict[str, dict[str, int]] = {}
    before = await store.load_directory(conn, org)
    for kind, old, new in (("people", before.people, directory.people), ("roles", before.roles, directory.roles)):
        summary[kind] = {
            "added": len(new.keys() - old.keys()),
            "changed": sum(1 for k in new.keys() & old.keys() if new[k] != old[k]),
            "removed": len(old.keys() - new.keys()),
        }
    await conn.execute("DELETE FROM router.roles WHERE org = $1", org)
    await conn.execute("DELETE FROM router.people WHERE org = $1", org)
    await conn.copy_records_to_table(
        "people",
        schema_name="router",
        columns=["org", "id", "name", "email", "department", "language"],
        records=[(org, *asdict(p).values()) for p in directory.people.values()],
    )
    await conn.copy_records_to_table(
        "roles",
        schema_name="router",
        columns=["org", "key", "title", "holders"],
        records=[(org, r.key, r.title, list(r.holders)) for r in directory.roles.values()],
    )
    if any(any(counts.values()) for counts in summary.values()):
        await store.bump_directory(conn, org)
    return summary


async def apply_flows(conn: asyncpg.Connection, org: str, flows: list[FlowDefinition]) -> None:
    for flow in flows:
        await conn.execute(
            "INSERT INTO router.flows (org, key, title, department, group_key, confidential, steps)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (org, key) DO UPDATE SET title = $3,"
            " department = $4, group_key = $5, confidential = $6, steps = $7, updated_at = now()",
            org,
            flow.key,
            flow.title,
            flow.department,
            flow.group,
            flow.confidential,
            [s.model_dump() for s in flow.steps],
        )


def _fail(console: Console, error: ImportError_) -> None:
    console.print(f"[red]Nothing imported: {len(error.problems)} problem(s).[/red]")
    for problem in error.problems:
        console.print(f"  {problem}")
    raise typer.Exit(1)


@directory_app.command("import")
def import_directory(
    source: Path = typer.Argument(..., exists=True, help=".xlsx file, .yaml file or folder of .csv files"),
    org: str = typer.Option(None, help="organisation key (default: PARAAF_ORG)"),
    dry_run: bool = typer.Option(False, "--dry-run", help="check and report, change nothing"),
) -> None:
    """Import the directory: all of it, or nothing when a row is bad."""
    console = Console()
    settings = RouterSettings()
    try:
        directory = read_directory(read_workbook(source))
    except ImportError_ as error:
        _fail(console, error)

    async def run() -> dict[str, dict[str, int]]:
        pool = await _pool(settings)
        try:
            async with pool.acquire() as conn:
                transaction = conn.transaction()
                await transaction.start()
                summary = await apply_directory(conn, org or settings.org, directory)
                await (transaction.rollback() if dry_run else transaction.commit())
                return summary
        finally:
            await pool.close()

    summary = asyncio.run(run())
    verb = "Would import" if dry_run else "Imported"
    for kind, counts in summary.items():
        console.print(f"{verb} {kind}: {counts['added']} added, {counts['changed']} changed, {counts['removed']} removed")


@flows_app.command("load")
def load_flows(
    folder: Path = typer.Argument(..., exists=True, file_okay=False, help="folder of flow .yaml files"),
    org: str = typer.Option(None, help="organisation key (default: PARAAF_ORG)"),
) -> None:
    """Load (add or replace) every flow in FOLDER, checked against the directory."""
    console = Console()
    settings = RouterSettings()

    async def run() -> list[FlowDefinition]:
        pool = await _pool(settings)
        try:
            async with pool.acquire() as conn, conn.transaction():
                directory = await store.load_directory(conn, org or settings.org)
                flows = read_flows(folder, directory)
                await apply_flows(conn, org or settings.org, flows)
                return flows
        finally:
            await pool.close()

    try:
        flows = asyncio.run(run())
    except ImportError_ as error:
        _fail(console, error)
    console.print(f"Loaded {len(flows)} flow(s): {', '.join(f.key for f in flows)}")
