"""Operator commands of the signer: ``paraaf ca ...`` and ``paraaf verify FILE.pdf``."""

import asyncio
import json
import logging
from pathlib import Path

import asyncpg
import typer

from services.signer.config import SignerSettings
from services.signer.keys import Keyring, key_secret
from services.signer.verify import NotVerifiable, load_roots, verify_pdf_async
from shared.db import connect_pool, ensure_database, migrate

__all__ = ["ca_app", "verify"]

ca_app = typer.Typer(help="The internal certificate authority.", no_args_is_help=True)


@ca_app.command("export")
def export(
    output: Path = typer.Option(None, "--output", "-o", help="write the PEM here instead of standard output"),
    org: str = typer.Option(None, help="organisation key (default: PARAAF_ORG)"),
) -> None:
    """Print the root certificate signatures chain to (created if it does not exist yet)."""
    settings = SignerSettings()

    async def run() -> str:
        await ensure_database(settings.database_url)
        pool = await connect_pool(settings.database_url, max_size=1)
        try:
            await migrate(pool, "signer", [Path(__file__).parent / "migrations"])
            async with pool.acquire() as conn:
                cert_pem, _ = await Keyring(key_secret(settings), settings.organisation_name).authority(
                    conn, org or settings.org
                )
            return cert_pem
        finally:
            await pool.close()

    pem = asyncio.run(run())
    if output:
        output.write_text(pem)
    else:
        typer.echo(pem, nl=False)


def verify(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True, help="the signed PDF"),
    trust: list[Path] = typer.Option(
        None, "--trust", help="a PEM file of trusted root certificates (repeatable); default: this installation's root"
    ),
    as_json: bool = typer.Option(False, "--json", help="print the report as JSON"),
    org: str = typer.Option(None, help="organisation key whose root to trust (default: PARAAF_ORG)"),
) -> None:
    """Validate the signatures in a PDF: signer, on behalf of, time, intact, trusted, what changed after each.

    Exits 1 when any signature fails (or the PDF holds none), 2 when the file cannot be read.
    """
    # pyHanko logs every validation failure with a traceback; the report already says what failed.
    logging.getLogger("pyhanko").setLevel(logging.CRITICAL)
    logging.getLogger("pyhanko_certvalidator").setLevel(logging.CRITICAL)
    roots = [c for path in trust for c in load_roots(path.read_bytes())] if trust else _installation_roots(org)
    try:
        report = asyncio.run(verify_pdf_async(file.read_bytes(), roots))
    except NotVerifiable as exc:
        typer.echo(f"{file}: {exc}", err=True)
        raise typer.Exit(2) from None
    settings = SignerSettings()
    typer.echo(json.dumps(report.to_dict(), indent=2, ensure_ascii=False) if as_json else report.to_text(settings.timezone), nl=False)
    raise typer.Exit(0 if report.ok else 1)


def _installation_roots(org: str | None) -> list:
    settings = SignerSettings()

    async def run() -> str:
        pool = await connect_pool(settings.database_url, max_size=1)
        try:
            return await pool.fetchval("SELECT cert_pem FROM signer.authorities WHERE org = $1", org or settings.org)
        finally:
            await pool.close()

    try:
        pem = asyncio.run(run())
    except (OSError, asyncpg.PostgresError) as exc:
        typer.echo(f"cannot read the root certificate from the database ({exc}); pass --trust root.pem", err=True)
        raise typer.Exit(2) from None
    if pem is None:
        typer.echo(f"organisation `{org or settings.org}` has no certificate authority yet; pass --trust root.pem", err=True)
        raise typer.Exit(2)
    return load_roots(pem.encode())
