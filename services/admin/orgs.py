"""``paraaf org create KEY --name "Stad Aalst" [--portal-url URL]`` and ``paraaf org list``: the organisations
(cities) one installation serves. Creating one registers it (shared/orgs.py) and makes its certificate authority,
so its signers' certificates chain to its own root from the first document; everything else an organisation
has — directory, flows, sources, API keys — is added with the usual commands and ``--org KEY``, which refuse a
key no ``paraaf org create`` made."""

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import asyncpg
import typer
from rich.console import Console
from rich.table import Table

from services.admin.config import AdminSettings
from shared import orgs
from shared.db import connect_pool
from shared.settings import CannotStart

__all__ = ["create_org_authority", "known_org", "org_app"]

org_app = typer.Typer(help="The organisations (cities) this installation serves.", no_args_is_help=True)
err = Console(stderr=True, soft_wrap=True)
T = TypeVar("T")


def _fail(message: str) -> None:
    err.print(f"[red]{message}[/red]", markup=True, highlight=False)
    raise typer.Exit(1)


async def as_admin(settings: AdminSettings, work: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
    pool = await connect_pool(settings.database_url, max_size=1)
    try:
        async with pool.acquire() as conn, conn.transaction():
            if not await conn.fetchval("SELECT to_regclass('access.orgs') IS NOT NULL"):
                raise CannotStart("the database has no organisations table yet: run `paraaf setup` (or `paraaf db setup`) first")
            return await work(conn)
    finally:
        await pool.close()


def known_org(settings: AdminSettings, key: str | None) -> str:
    """``key`` (default PARAAF_ORG) when it names a registered organisation; else the command stops, saying which exist."""
    key = key or settings.org
    try:
        asyncio.run(as_admin(settings, lambda conn: orgs.require_org(conn, key)))
    except (orgs.UnknownOrg, CannotStart) as exc:
        _fail(str(exc))
    return key


async def create_org_authority(settings: AdminSettings, key: str) -> str:
    """The organisation's root certificate, made now with the signer's keys (PARAAF_KEY_SECRET) if it had none."""
    # Here, not at the top: opening the CA takes the signer's key store and pyHanko, which no other command needs.
    from services.signer.config import MIGRATIONS as SIGNER_MIGRATIONS
    from services.signer.config import SignerSettings
    from services.signer.hsm import token_config
    from services.signer.keys import Keyring, key_secret
    from shared.db import open_database

    signer = SignerSettings(**{**settings.model_dump(exclude={"broker_admin_api"})})
    pool = await open_database(signer, "signer", migrations=SIGNER_MIGRATIONS)
    try:
        async with pool.acquire() as conn:
            keyring = Keyring(key_secret(signer), signer.organisation_name, signer.public_url, token=token_config(signer))
            await keyring.unlock(conn)
            cert_pem, _ = await keyring.authority(conn, key)
            return cert_pem
    finally:
        await pool.close()


def _has_key_secret(settings: AdminSettings) -> bool:
    from services.signer.config import SignerSettings

    return SignerSettings().key_secret is not None or (Path(settings.data_dir) / "signer-key-secret").exists()


@org_app.command("create")
def create(
    key: str = typer.Argument(..., help="the organisation's key: 2 to 40 lower-case letters, digits, _ or -, e.g. aalst"),
    name: str = typer.Option(..., help="its name on pages, mails and certificates, e.g. \"Stad Aalst\""),
    portal_url: str = typer.Option(
        None, "--portal-url", help="where its people's portal lives, e.g. https://aalst.paraaf.example (a host of its own)"
    ),
) -> None:
    """Register organisation KEY (or change its name or portal) and make its certificate authority."""
    settings = AdminSettings()
    try:
        orgs.check_key(key)
        if portal_url and orgs.portal_host(orgs.check_portal_url(portal_url)) == orgs.portal_host(settings.public_url):
            raise ValueError(f"{portal_url} is the installation's own portal (PARAAF_PUBLIC_URL); give {key} a host of its own, or none")
        org, new = asyncio.run(as_admin(settings, lambda conn: orgs.create_org(conn, key, name, portal_url)))
    except (ValueError, CannotStart) as exc:
        _fail(str(exc))
    portal = org.portal_url or f"{settings.public_url.rstrip('/')} (PARAAF_PUBLIC_URL, shared; --portal-url gives it its own)"
    err.print(f"Organisation `{org.key}` ({org.name}) {'created' if new else 'updated'}; its portal: {portal}/p/.")
    if not _has_key_secret(settings):
        err.print("[yellow]PARAAF_KEY_SECRET is not set here: the signer makes its CA when it signs its first document.[/yellow]", markup=True)
    else:
        try:
            root = asyncio.run(create_org_authority(settings, key))
        except CannotStart as exc:
            _fail(f"its certificate authority was not made: {exc}")
        err.print(f"Its certificate authority is ready (`paraaf ca export --org {key}` prints the root, {len(root)} bytes of PEM).")
    err.print(
        f"Next: `paraaf directory import --org {key} FILE`, `paraaf flows load --org {key} DIR`,"
        f" `paraaf sources add NAME --org {key} ...`, `paraaf keys create --org {key} ...`."
    )


@org_app.command("list")
def list_orgs() -> None:
    """Every organisation: key, name, portal, since when."""
    settings = AdminSettings()
    try:
        found = asyncio.run(as_admin(settings, orgs.list_orgs))
    except CannotStart as exc:
        _fail(str(exc))
    table = Table("key", "name", "portal", "created")
    for org in found:
        table.add_row(org.key, org.name, org.portal_url or f"{settings.public_url} (shared)", f"{org.created_at:%Y-%m-%d %H:%M}")
    Console().print(table)
