"""Operator commands of the signer: ``paraaf ca ...``."""

import asyncio
from pathlib import Path

import typer

from services.signer.config import SignerSettings
from services.signer.keys import Keyring, key_secret
from shared.db import connect_pool, ensure_database, migrate

__all__ = ["ca_app"]

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
