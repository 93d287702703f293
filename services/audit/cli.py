"""Operator commands of the audit log: ``paraaf audit ...``."""

import asyncio
from pathlib import Path

import typer

from services.audit import handlers
from services.audit.chain import Break
from services.audit.config import AuditSettings
from services.audit.store import PostgresAuditStore
from shared.service import open_database

__all__ = ["audit_app"]

audit_app = typer.Typer(help="The tamper-evident audit log.", no_args_is_help=True)


@audit_app.command("verify")
def verify() -> None:
    """Check every link of the hash chain; exit 1 at the first break."""
    settings = AuditSettings()

    async def run() -> tuple[int, Break | None]:
        pool = await open_database(settings, "audit", migrations=Path(__file__).parent / "migrations")
        try:
            async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
                return await handlers.verify(PostgresAuditStore(conn))
        finally:
            await pool.close()

    entries, problem = asyncio.run(run())
    if problem is not None:
        typer.echo(f"BROKEN at entry {problem.seq}: {problem.reason} ({entries} entries checked)")
        raise typer.Exit(1)
    typer.echo(f"intact: {entries} entries")
