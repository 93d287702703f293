"""``paraaf db setup``: the database, one role per service, each schema owned by
the service that owns it (DESIGN.md), every migration, and the few grants
that cross a schema — idempotently, with the administrator's URL
(``PARAAF_DATABASE_URL``).

Roles (``<prefix>`` is PARAAF_DB_ROLE_PREFIX):

* ``<prefix>_intake``, ``_router``, ``_signer``, ``_notifier``: log in and own
  their schema; nobody else may read it, except where granted below.
* ``<prefix>_audit`` logs in but owns nothing: it may insert into and read
  the log and its sealed checkpoints (not change or delete them, not disable
  their triggers), which ``<prefix>_audit_owner`` owns. ``paraaf db setup``
  also gives the audit its sealing key (once; kept after).
* ``<prefix>_blobs`` owns the blob store; intake and the signer may read
  and add blobs and versions, never change or delete one.
* ``<prefix>_access`` owns the API keys and the organisations; the services
  with an HTTP API may read them (the notifier the organisations alone);
  ``paraaf keys`` and ``paraaf org`` write them as the administrator.
* The signer may read the directory's people and roles (it checks whom it
  issues a certificate to), and, for its portal, the router's groups, flows,
  documents and requests and intake's documents and refusals — read only.
"""

import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import asyncpg

from services.audit.seal import new_sealing_key
from shared import apikeys, blobs, orgs
from shared.credentials import stored, write_identity
from shared.db import connect_pool, ensure_database, migrate
from shared.settings import Settings

__all__ = ["SCHEMAS", "SchemaSpec", "database_url_for", "role", "setup_database"]

SERVICES = ("intake", "router", "signer", "notifier", "audit")


def _migrations(package: str) -> Path:
    return Path(str(files(package).joinpath("migrations")))


@dataclass(frozen=True)
class SchemaSpec:
    name: str
    owner: str  # role suffix
    directories: tuple[Path, ...]
    messaging: bool = True


SCHEMAS = (
    SchemaSpec("blobs", "blobs", (blobs.MIGRATIONS,), messaging=False),
    SchemaSpec("access", "access", (apikeys.MIGRATIONS,), messaging=False),
    SchemaSpec("intake", "intake", (_migrations("services.intake"),)),
    SchemaSpec("router", "router", (_migrations("services.router"),)),
    SchemaSpec("signer", "signer", (_migrations("services.signer"),)),
    SchemaSpec("notifier", "notifier", (_migrations("services.notifier"),)),
    SchemaSpec("audit", "audit_owner", (_migrations("services.audit"),)),
)
_NOLOGIN = ("blobs", "access", "audit_owner")


def role(settings: Settings, suffix: str) -> str:
    return f"{settings.db_role_prefix}_{suffix}"


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def database_url_for(admin_url: str, user: str, password: str) -> str:
    parts = urlsplit(admin_url)
    hosts = parts.netloc.rpartition("@")[2]  # every host a primary/standby URL lists, with its port
    return urlunsplit(parts._replace(netloc=f"{quote(user, safe='')}:{quote(password, safe='')}@{hosts}"))


def _password(settings: Settings, service: str) -> str:
    url = stored(settings, service).get("database_url")
    return (unquote(urlsplit(url).password or "") if url else "") or secrets.token_urlsafe(24)


async def _ensure_role(conn: asyncpg.Connection, name: str, password: str | None) -> None:
    exists = await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", name)
    login = f"LOGIN PASSWORD {_literal(password)}" if password else "NOLOGIN"
    verb = "ALTER" if exists else "CREATE"
    await conn.execute(f'{verb} ROLE "{name}" {login} NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS')


async def _own_everything(conn: asyncpg.Connection, schema: str, owner: str) -> None:
    """Hand the schema and whatever an earlier version created in it to ``owner``."""
    await conn.execute(f'ALTER SCHEMA {schema} OWNER TO "{owner}"')
    relations = await conn.fetch(
        "SELECT c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = $1 AND c.relkind IN ('r', 'p', 'v', 'm', 'S')"
        " AND pg_get_userbyid(c.relowner) <> $2"
        " AND NOT (c.relkind = 'S' AND EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.deptype IN ('a', 'i')))",
        schema,
        owner,
    )
    for relation in relations:
        kind = {"v": "VIEW", "m": "MATERIALIZED VIEW", "S": "SEQUENCE"}.get(relation["relkind"], "TABLE")
        await conn.execute(f'ALTER {kind} {schema}."{relation["relname"]}" OWNER TO "{owner}"')
    functions = await conn.fetch(
        "SELECT p.oid::regprocedure::text AS signature FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
        " WHERE n.nspname = $1 AND pg_get_userbyid(p.proowner) <> $2",
        schema,
        owner,
    )
    for function in functions:
        await conn.execute(f'ALTER FUNCTION {function["signature"]} OWNER TO "{owner}"')


async def _grant(conn: asyncpg.Connection, settings: Settings) -> None:
    r = lambda suffix: f'"{role(settings, suffix)}"'  # noqa: E731
    statements = [
        # The audit service appends and reads; the log's owner alone could change it.
        f"GRANT USAGE ON SCHEMA audit TO {r('audit')}",
        f"GRANT SELECT, INSERT ON audit.log, audit.inbox TO {r('audit')}",
        f"GRANT SELECT, UPDATE ON audit.head TO {r('audit')}",
        f"GRANT SELECT, INSERT ON audit.checkpoints TO {r('audit')}",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON audit.outbox TO {r('audit')}",
        f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA audit TO {r('audit')}",
        f"GRANT SELECT ON audit.schema_migrations TO {r('audit')}",
        # Blobs: read and add, never change.
        f"GRANT USAGE ON SCHEMA blobs TO {r('intake')}, {r('signer')}",
        f"GRANT SELECT, INSERT ON ALL TABLES IN SCHEMA blobs TO {r('intake')}, {r('signer')}",
        # API keys: read by the services that check them.
        f"GRANT USAGE ON SCHEMA access TO {r('intake')}, {r('router')}, {r('signer')}",
        f"GRANT SELECT ON ALL TABLES IN SCHEMA access TO {r('intake')}, {r('router')}, {r('signer')}",
        # The organisations' names and portals: for the notifier, where a mail's portal links point.
        f"GRANT USAGE ON SCHEMA access TO {r('notifier')}",
        f"GRANT SELECT ON access.orgs TO {r('notifier')}",
        # The signer checks whom it certifies against the directory; its portal shows people
        # their documents as the router and intake have them (read only: it changes them only
        # through messages).
        f"GRANT USAGE ON SCHEMA router TO {r('signer')}",
        f"GRANT SELECT ON router.people, router.roles, router.groups, router.flows, router.instances, router.requests,"
        f" router.absences TO {r('signer')}",
        # The notifier reads how each person wants to hear of requests (a mail each, or a daily digest):
        # that column and the row's key, nothing else of the directory (a whole-table grant is taken back).
        f"GRANT USAGE ON SCHEMA router TO {r('notifier')}",
        f"REVOKE SELECT ON router.people FROM {r('notifier')}",
        f"GRANT SELECT (org, id, mails) ON router.people TO {r('notifier')}",
        f"GRANT USAGE ON SCHEMA intake TO {r('signer')}",
        f"GRANT SELECT ON intake.documents, intake.rejections TO {r('signer')}",
        # Its operator pages show a document's trail, the live stream and the figures from the audit
        # log (read only: the audit log is written by the audit service alone).
        f"GRANT USAGE ON SCHEMA audit TO {r('signer')}",
        f"GRANT SELECT ON audit.log TO {r('signer')}",
    ]
    for statement in statements:
        await conn.execute(statement)


async def _database_level(conn: asyncpg.Connection, settings: Settings, database: str, services: Iterable[str]) -> None:
    await conn.execute(f'REVOKE ALL ON DATABASE "{database}" FROM PUBLIC')
    await conn.execute("REVOKE ALL ON SCHEMA public FROM PUBLIC")
    logins = ", ".join(f'"{role(settings, s)}"' for s in services)
    await conn.execute(f'GRANT CONNECT ON DATABASE "{database}" TO {logins}')


async def setup_database(
    settings: Settings, schemas: Iterable[SchemaSpec] = SCHEMAS, services: Iterable[str] = SERVICES
) -> list[str]:
    """Everything above; each service's URL written to the secrets directory. Returns the migrations applied now."""
    admin_url = settings.database_url
    await ensure_database(admin_url)
    database = urlsplit(admin_url).path.lstrip("/")
    schemas = tuple(schemas)
    passwords = {service: _password(settings, service) for service in services}
    pool = await connect_pool(admin_url, max_size=1)
    applied: list[str] = []
    try:
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext('paraaf-db-setup'))")
            for suffix in _NOLOGIN:
                await _ensure_role(conn, role(settings, suffix), None)
            for service, password in passwords.items():
                await _ensure_role(conn, role(settings, service), password)
            await _database_level(conn, settings, database, passwords)
            for schema in schemas:
                await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema.name}")
                await _own_everything(conn, schema.name, role(settings, schema.owner))
        for schema in schemas:
            applied += await migrate(
                pool, schema.name, schema.directories, messaging=schema.messaging, owner=role(settings, schema.owner)
            )
        async with pool.acquire() as conn, conn.transaction():
            await _grant(conn, settings)
            notifier_key = await _links_key(conn, settings)
            await _home_org(conn, settings)
    finally:
        await pool.close()
    for service, password in passwords.items():
        write_identity(settings, service, database_url=database_url_for(admin_url, role(settings, service), password))
    write_identity(settings, "notifier", signer_key=notifier_key)
    if "audit" in passwords and not stored(settings, "audit").get("seal_key"):  # kept once made: checkpoints already sealed name its public half
        write_identity(settings, "audit", seal_key=new_sealing_key())
    return applied


async def _home_org(conn: asyncpg.Connection, settings: Settings) -> None:
    """The installation's own organisation (PARAAF_ORG): registered once, kept after. Its portal is wherever the
    running signer's PARAAF_PUBLIC_URL says, not what the URL was when setup ran (a portal moved, or setup run
    with another environment, must not send its people's links to an address nobody serves)."""
    if await orgs.find_org(conn, settings.org) is None:
        name = getattr(settings, "organisation_name", None) or settings.org
        await orgs.create_org(conn, settings.org, name, None)


async def _links_key(conn: asyncpg.Connection, settings: Settings) -> str:
    """The notifier's key to the signer's link API: the one on file if the database knows it, else a new one."""
    current = stored(settings, "notifier").get("signer_key")
    if current and await apikeys.find_key(conn, current) is not None:
        return current
    await conn.execute("UPDATE access.api_keys SET revoked_at = now() WHERE org = '*' AND name = 'notifier' AND revoked_at IS NULL")
    _, key = await apikeys.create_key(conn, org="*", name="notifier", scopes=["links"], key=current)
    return key
