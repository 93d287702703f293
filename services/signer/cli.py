"""Operator commands of the signer: ``paraaf ca ...`` and ``paraaf verify FILE.pdf``."""

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import asyncpg
import typer

from services.signer.config import SignerSettings
from services.signer.hsm import token_config
from services.signer.keys import Keyring, check_secret, key_secret
from services.signer.verify import NotVerifiable, load_roots, verify_pdf_async
from shared.service import open_database
from shared.settings import CannotStart

__all__ = ["ca_app", "verify"]

ca_app = typer.Typer(help="The internal certificate authority and its keys.", no_args_is_help=True)
MIGRATIONS = Path(__file__).parent / "migrations"
T = TypeVar("T")


async def _signer_pool(settings: SignerSettings) -> asyncpg.Pool:
    return await open_database(settings, "signer", migrations=MIGRATIONS)


def _with_keyring(settings: SignerSettings, work: Callable[[asyncpg.Connection, Keyring], Awaitable[T]]) -> T:
    """``work`` with the signer's keyring, unlocked with PARAAF_KEY_SECRET, as the signer's own role."""

    async def run() -> T:
        pool = await _signer_pool(settings)
        try:
            async with pool.acquire() as conn:
                keyring = Keyring(key_secret(settings), settings.organisation_name, token_config(settings))
                await keyring.unlock(conn)
                return await work(conn, keyring)
        finally:
            await pool.close()

    return asyncio.run(run())


@ca_app.command("export")
def export(
    output: Path = typer.Option(None, "--output", "-o", help="write the PEM here instead of standard output"),
    org: str = typer.Option(None, help="organisation key (default: PARAAF_ORG)"),
) -> None:
    """Print the root certificate signatures chain to (created if it does not exist yet)."""
    settings = SignerSettings()

    async def root(conn: asyncpg.Connection, keyring: Keyring) -> str:
        cert_pem, _ = await keyring.authority(conn, org or settings.org)
        return cert_pem

    pem = _with_keyring(settings, root)
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
        pool = await _signer_pool(settings)
        try:
            return await pool.fetchval("SELECT cert_pem FROM signer.authorities WHERE org = $1", org or settings.org)
        finally:
            await pool.close()

    try:
        pem = asyncio.run(run())
    except (OSError, asyncpg.PostgresError, CannotStart) as exc:
        typer.echo(f"cannot read the root certificate from the database ({exc}); pass --trust root.pem", err=True)
        raise typer.Exit(2) from None
    if pem is None:
        typer.echo(f"organisation `{org or settings.org}` has no certificate authority yet; pass --trust root.pem", err=True)
        raise typer.Exit(2)
    return load_roots(pem.encode())


@ca_app.command("rotate-secret")
def rotate_secret(
    new_secret_file: Path = typer.Option(
        ..., "--new-secret-file", exists=True, dir_okay=False, help="a file holding the new PARAAF_KEY_SECRET"
    ),
) -> None:
    """Encrypt every signing key under a new secret (stop the signer first; start it with the new secret after)."""
    settings = SignerSettings()
    new_secret = check_secret(new_secret_file.read_text().strip())
    count = _with_keyring(settings, lambda conn, keyring: keyring.rotate(conn, new_secret))
    typer.echo(f"{count} key(s) now encrypted under the new secret: set PARAAF_KEY_SECRET to it and start the signer")
