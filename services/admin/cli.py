"""Setup commands, run with an administrator's credentials (PARAAF_DATABASE_URL,
PARAAF_AMQP_URL): ``paraaf setup`` (database and broker), ``paraaf sources``
(systems allowed to submit) and ``paraaf keys`` (API keys). Each can be run
again and changes only what is not as it should be."""

import asyncio
import re
import secrets
from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncpg
import typer
from rich.console import Console
from rich.table import Table

from services.admin.config import AdminSettings, BrokerAdminError
from services.admin.database import setup_database
from services.admin.orgs import known_org
from services.intake.config import MIGRATIONS
from services.intake.sources import SourcePolicy, webhook_url_problem
from services.intake.store import PostgresIntakeStore
from services.signer.config import SignerSettings
from services.signer.uploads import PORTAL_SOURCE
from shared import apikeys
from shared.contract import SOURCE_NAME
from shared.credentials import stored, write_identity
from shared.db import connect_pool, open_database
from shared.names import source_user
from shared.outbox import Outbox
from shared.settings import CannotStart

__all__ = ["broker_app", "db_app", "keys_app", "register_source", "setup", "setup_portal", "sources_app"]

db_app = typer.Typer(help="The database: roles, schemas, migrations.", no_args_is_help=True)
broker_app = typer.Typer(help="RabbitMQ: users, permissions, exchanges and queues.", no_args_is_help=True)
sources_app = typer.Typer(help="The systems allowed to submit documents.", no_args_is_help=True)
keys_app = typer.Typer(help="API keys for systems and scripts that call the HTTP APIs.", no_args_is_help=True)
T = TypeVar("T")
err = Console(stderr=True, soft_wrap=True)


def _fail(message: str) -> None:
    err.print(f"[red]{message}[/red]", markup=True, highlight=False)
    raise typer.Exit(1)


def _setup_database(settings: AdminSettings) -> None:
    applied = asyncio.run(setup_database(settings))
    err.print(f"Database ready: roles {settings.db_role_prefix}_<service>, {len(applied)} migration(s) applied now.")


def _setup_broker(settings: AdminSettings) -> None:
    # Here, not at the top: broker administration declares the topology with FastStream, which most commands never load.
    from services.admin.broker import admin_for, setup_broker
    from shared.topology import TOPOLOGY

    try:
        users = asyncio.run(setup_broker(settings, TOPOLOGY, admin_for(settings)))
    except BrokerAdminError as exc:
        _fail(str(exc))
    err.print(f"Broker ready: users {', '.join(users)}; exchanges, queues and dead-letter queues declared.")


@db_app.command("setup")
def db_setup() -> None:
    """Create the database, one role per service, their schemas; apply migrations; grant what crosses schemas."""
    _setup_database(AdminSettings())


@broker_app.command("setup")
def broker_setup() -> None:
    """Create one broker user per service with only the rights it needs, and declare the whole topology."""
    _setup_broker(AdminSettings())


def setup() -> None:
    """Set up the database and the broker (`paraaf db setup` and `paraaf broker setup`); credentials go to PARAAF_SECRETS_DIR.
    The organisation's CA certifies the audit's sealing key (PARAAF_KEY_SECRET opens the CA, as for the signer)."""
    settings = AdminSettings()
    _setup_database(settings)
    _setup_broker(settings)
    try:
        asyncio.run(setup_portal(settings))
    except BrokerAdminError as exc:
        _fail(str(exc))
    err.print(f"Portal ready: people of org `{settings.org}` submit through intake as source `{PORTAL_SOURCE}`.")
    _certify_audit_seal(settings)
    err.print(f"Each service's credentials are in {settings.secrets_path} (one file per service, readable by you alone).")


def _certify_audit_seal(settings: AdminSettings) -> None:
    # Here, not at the top: opening the CA takes the signer's key store and pyHanko, which no other command needs.
    from services.admin.sealing import NoKeySecret, certify_audit_seal

    try:
        certified = asyncio.run(certify_audit_seal(SignerSettings()))
    except NoKeySecret as exc:  # everything else is set up; the audit seals uncertified until this is done
        err.print(f"[yellow]The audit sealing key was not certified: {exc}.[/yellow]", markup=True, highlight=False)
        return
    except CannotStart as exc:
        _fail(f"the audit sealing key was not certified: {exc}")
    err.print(f"Audit sealing key {'certified by' if certified else 'already certified by'} the CA of org `{settings.org}`.")


async def _as_intake(settings: AdminSettings, work: Callable[[PostgresIntakeStore], Awaitable[T]]) -> T:
    pool = await open_database(settings, "intake", migrations=MIGRATIONS)
    try:
        async with pool.acquire() as conn, conn.transaction():
            return await work(PostgresIntakeStore(conn, Outbox("intake")))
    finally:
        await pool.close()


def _in_intake(work: Callable[[PostgresIntakeStore], Awaitable[T]]) -> T:
    return asyncio.run(_as_intake(AdminSettings(), work))


async def register_source(
    settings: AdminSettings, policy: SourcePolicy, *, new_password: bool = False
) -> tuple[bool, str | None]:
    """Register a source or change its rights: (whether it is new, its AMQP URL when it got a password now)."""
    # Here, not at the top: broker administration declares the topology with FastStream, which most commands never load.
    from services.admin.broker import admin_for, setup_source_user

    new = await _as_intake(settings, lambda store: store.upsert_source(policy))
    password = secrets.token_urlsafe(24) if new or new_password else None
    return new, await setup_source_user(settings, admin_for(settings), policy.source, password)


async def setup_portal(settings: AdminSettings) -> None:
    """The portal's way into intake: source `portal` for PARAAF_ORG (for any of its people, with ad-hoc steps),
    whose broker URL the signer keeps with its own credentials. Run again, it keeps the password it gave."""
    known = stored(settings, "signer").get("portal_amqp_url")
    policy = SourcePolicy(PORTAL_SOURCE, settings.org, None, None, ad_hoc_steps=True)
    _, url = await register_source(settings, policy, new_password=known is None)
    if url is not None:
        write_identity(settings, "signer", portal_amqp_url=url)


def _names(value: str | None) -> frozenset[str] | None:
    return frozenset(n.strip() for n in value.split(",") if n.strip()) if value is not None else None


@sources_app.command("add")
def add_source(
    source: str = typer.Argument(..., help="the system's name, as in its routing key submit.<source>"),
    org: str = typer.Option(..., help="the one organisation it submits for"),
    flows: str = typer.Option(None, help="comma-separated flow keys it may use (default: every flow of its org)"),
    submitters: str = typer.Option(None, help="comma-separated person ids it may submit for"),
    any_submitter: bool = typer.Option(False, "--any-submitter", help="it may submit for anyone in its org's directory"),
    ad_hoc_steps: bool = typer.Option(False, "--ad-hoc-steps", help="it may send its own `steps` instead of a flow"),
    new_password: bool = typer.Option(False, "--new-password", help="give an existing source a new password (and URL)"),
    webhook: str = typer.Option(
        None, help="also deliver its outcomes by POST to this https URL (prints the signing secret once)"
    ),
    no_webhook: bool = typer.Option(False, "--no-webhook", help="stop delivering its outcomes by webhook"),
) -> None:
    """Register SOURCE (or change what it may do) and print the AMQP URL of its own broker user."""
    if not re.fullmatch(SOURCE_NAME, source):
        _fail("a source name is 1 to 64 letters, digits, _ or -")
    if (submitters is None) == (not any_submitter):
        _fail(f"say whom {source} may submit for: --submitters a,b or --any-submitter")
    settings = AdminSettings()
    if webhook is not None and (problem := webhook_url_problem(webhook, allow_http=settings.webhook_allow_http)):
        _fail(problem)
    known_org(settings, org)
    policy = SourcePolicy(source, org, _names(flows), _names(submitters), ad_hoc_steps)
    try:
        new, url = asyncio.run(register_source(settings, policy, new_password=new_password))
    except BrokerAdminError as exc:
        _fail(str(exc))
    if webhook is not None or no_webhook:
        _set_webhook(settings, source, None if no_webhook else webhook)
    err.print(
        f"Source `{source}` {'registered' if new else 'updated'}: org `{org}`, flows {', '.join(sorted(policy.flows)) if policy.flows else 'all'},"
        f" submitters {', '.join(sorted(policy.submitters)) if policy.submitters is not None else 'any'},"
        f" ad-hoc steps {'allowed' if ad_hoc_steps else 'refused'}. It publishes submit.{source} on esign.intake"
        f" (with user_id {source_user(settings.broker_user_prefix, source)}) and reads queue outcomes.{source}."
    )
    if url is None:
        err.print("Its password is unchanged (--new-password gives it a new one).")
    else:
        err.print("Its AMQP URL (shown once; give it to the system's administrator):")
        typer.echo(url)


def _set_webhook(settings: AdminSettings, source: str, url: str | None) -> None:
    """A new signing secret with every URL: whoever had the old one cannot sign for the new receiver."""
    secret = secrets.token_urlsafe(32) if url else None
    asyncio.run(_as_intake(settings, lambda store: store.set_webhook(source, url, secret)))
    if url is None:
        err.print(f"Outcomes of `{source}` are no longer delivered by webhook (they stay in queue outcomes.{source}).")
        return
    err.print(
        f"Outcomes of `{source}` are also POSTed to {url}, signed with this secret (shown once; the receiver checks"
        ' header Paraaf-Signature with it, README "Webhooks"):'
    )
    typer.echo(f"webhook secret: {secret}")


@sources_app.command("redeliver")
def redeliver(source: str = typer.Argument(...)) -> None:
    """Try again the webhook deliveries of SOURCE given up on (once its receiver answers again)."""
    count = _in_intake(lambda store: store.redeliver(source))
    err.print(f"{count} webhook delivery(ies) of `{source}` will be tried again now, for another PARAAF_WEBHOOK_RETRY_HOURS.")


@sources_app.command("list")
def list_sources() -> None:
    """Every registered source and what it may do."""
    table = Table("source", "org", "flows", "submitters", "ad-hoc steps", "webhook")
    for p, webhook in _in_intake(_sources_with_webhooks):
        table.add_row(
            p.source,
            p.org,
            ", ".join(sorted(p.flows)) if p.flows is not None else "all",
            ", ".join(sorted(p.submitters)) if p.submitters is not None else "any",
            "yes" if p.ad_hoc_steps else "no",
            webhook or "-",
        )
    Console().print(table)


async def _sources_with_webhooks(store: PostgresIntakeStore) -> list[tuple[SourcePolicy, str | None]]:
    return [(p, await store.webhook_url(p.source)) for p in await store.sources()]


@sources_app.command("remove")
def remove_source(source: str = typer.Argument(...)) -> None:
    """Unregister SOURCE and delete its broker user (its outcomes queue stays until it is empty)."""
    # Here, not at the top: broker administration declares the topology with FastStream, which most commands never load.
    from services.admin.broker import admin_for, remove_source_user

    settings = AdminSettings()
    if not _in_intake(lambda store: store.delete_source(source)):
        _fail(f"no source `{source}`")
    asyncio.run(remove_source_user(settings, admin_for(settings), source))
    err.print(f"Source `{source}` removed; it can no longer publish or read.")


def _as_admin(work: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
    settings = AdminSettings()

    async def run() -> T:
        pool = await connect_pool(settings.database_url, max_size=1)
        try:
            async with pool.acquire() as conn, conn.transaction():
                return await work(conn)
        finally:
            await pool.close()

    return asyncio.run(run())


@keys_app.command("create")
def create_key(
    name: str = typer.Option(..., help="who will use it, e.g. the system's name"),
    scopes: str = typer.Option(..., help="comma-separated: operate (absences, withdrawing) and/or admin"),
    org: str = typer.Option(None, help="organisation key (default: PARAAF_ORG)"),
) -> None:
    """Create an API key and print it (once: only its hash is kept)."""
    settings = AdminSettings()
    org = known_org(settings, org)
    try:
        principal, key = _as_admin(
            lambda conn: apikeys.create_key(conn, org=org or settings.org, name=name, scopes=sorted(_names(scopes) or ()))
        )
    except ValueError as exc:
        _fail(str(exc))
    err.print(f"Key `{principal.name}` for org `{principal.org}` with scopes {', '.join(sorted(principal.scopes))}:")
    typer.echo(key)


@keys_app.command("list")
def list_keys(org: str = typer.Option(None, help="only this organisation's keys")) -> None:
    """Every key: name, org, scopes, created, revoked (never the key itself)."""
    table = Table("name", "org", "scopes", "created", "revoked")
    for row in _as_admin(lambda conn: apikeys.list_keys(conn, org)):
        table.add_row(
            row["name"],
            row["org"],
            ", ".join(row["scopes"]),
            f"{row['created_at']:%Y-%m-%d %H:%M}",
            f"{row['revoked_at']:%Y-%m-%d %H:%M}" if row["revoked_at"] else "",
        )
    Console().print(table)


@keys_app.command("revoke")
def revoke_key(
    name: str = typer.Argument(...), org: str = typer.Option(None, help="organisation key (default: PARAAF_ORG)")
) -> None:
    """Revoke the key NAME: it stops working at once."""
    settings = AdminSettings()
    if not _as_admin(lambda conn: apikeys.revoke_key(conn, org=org or settings.org, name=name)):
        _fail(f"no live key `{name}` in org `{org or settings.org}`")
    err.print(f"Key `{name}` revoked.")
