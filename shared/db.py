"""PostgreSQL access: the pool (with a jsonb codec), database creation and
numbered SQL migrations per schema.

Migrations are files ``NNN_name.sql`` in a service's ``migrations/`` folder.
``paraaf db setup`` applies them, as the schema's owner, each once, under an
advisory lock so that two setups running together do not race; the first
migration of every service schema is the messaging tables (inbox, outbox)
this library needs. A service only checks at start that its schemas are up
to date (:func:`check_migrated`): it has no right to change them;
:func:`open_database` is how it (or an operator's command acting for it)
connects, as its own role.
"""

import json
import re
import weakref
from collections.abc import Iterable, Sequence
from importlib.resources import files
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import structlog

from shared import apikeys, blobs
from shared.credentials import read_identity
from shared.settings import CannotStart, Settings

__all__ = [
    "SHARED_SCHEMAS",
    "NotMigrated",
    "NotSetUp",
    "canonical_json",
    "check_migrated",
    "connect_pool",
    "ensure_database",
    "keeps_session_state",
    "migrate",
    "migrations_of",
    "open_database",
]

_MIGRATION = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")
_SCHEMA = re.compile(r"^[a-z_][a-z0-9_]*$")


def canonical_json(value: Any) -> str:
    """The one JSON rendering we hash and compare: sorted keys, no spaces."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec(
        "jsonb", encoder=canonical_json, decoder=json.loads, schema="pg_catalog"
    )
    await conn.set_type_codec(
        "json", encoder=canonical_json, decoder=json.loads, schema="pg_catalog"
    )


# Pooled connections that took state outliving a transaction (a session advisory lock): reset in full on release.
_SESSION_STATE: "weakref.WeakSet[asyncpg.Connection]" = weakref.WeakSet()


def _connection_of(conn: asyncpg.Connection) -> asyncpg.Connection:
    """The connection itself behind the pool's proxy for it."""
    return getattr(conn, "_con", None) or conn


def keeps_session_state(conn: asyncpg.Connection) -> None:
    """Mark a pooled connection that takes session-level state, such as a ``pg_advisory_lock`` held across
    transactions: when it goes back to the pool, PostgreSQL's full reset runs on it, so no lock (or setting)
    passes to whoever takes it next, even when the code that took the lock never got to release it."""
    _SESSION_STATE.add(_connection_of(conn))


async def _reset_connection(conn: asyncpg.Connection) -> None:
    """What a released connection needs before another task takes it. asyncpg's pool has already rolled back an
    open transaction and dropped its listeners. Its default reset also sends ``pg_advisory_unlock_all(); CLOSE ALL;
    UNLISTEN *; RESET ALL`` on every release: a round trip as costly as a statement, for state Paraaf's code only
    ever keeps inside a transaction (SET LOCAL, transaction-scoped locks, cursors; LISTEN on connections of its
    own). So that query runs only on a connection marked by :func:`keeps_session_state`."""
    if conn in _SESSION_STATE:
        _SESSION_STATE.discard(conn)
        await conn.execute(conn.get_reset_query())


async def connect_pool(url: str, *, max_size: int = 5) -> asyncpg.Pool:
    return await asyncpg.create_pool(url, min_size=1, max_size=max_size, init=_init_connection, reset=_reset_connection)


async def ensure_database(url: str) -> None:
    """Create the database ``url`` names when it does not exist yet."""
    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    if not _SCHEMA.match(name):
        raise ValueError(f"database name {name!r} must be lower-case letters, digits and _")
    admin = urlunsplit(parts._replace(path="/postgres"))
    conn = await asyncpg.connect(admin)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            try:
                await conn.execute(f'CREATE DATABASE "{name}"')
            except asyncpg.DuplicateDatabaseError:
                pass  # another process created it between our check and our create
    finally:
        await conn.close()


def _migration_files(directory: Path) -> list[tuple[int, Path]]:
    found = []
    for path in sorted(directory.glob("*.sql")):
        match = _MIGRATION.match(path.name)
        if not match:
            raise ValueError(f"migration {path} must be named NNN_lower_case.sql")
        found.append((int(match.group(1)), path))
    versions = [v for v, _ in found]
    if len(set(versions)) != len(versions):
        raise ValueError(f"two migrations in {directory} share a number")
    return found


def _messaging_sql() -> str:
    return files("shared").joinpath("messaging.sql").read_text()


def migrations_of(directories: Iterable[Path], *, messaging: bool = True) -> list[tuple[int, str, str]]:
    """(version, name, SQL) in order; ``messaging`` adds the inbox and outbox tables as migration 000."""
    migrations = [(0, "000_messaging", _messaging_sql())] if messaging else []
    for directory in directories:
        migrations += [(v, p.stem, p.read_text()) for v, p in _migration_files(directory)]
    return migrations


class NotMigrated(CannotStart):
    """The database schema is older than this version of Paraaf expects."""


async def check_migrated(conn: asyncpg.Connection | asyncpg.Pool, schema: str, directories: Iterable[Path], *, messaging: bool = True) -> None:
    """Refuse to run against a schema that lacks migrations this code needs."""
    wanted = {v for v, _, _ in migrations_of(directories, messaging=messaging)}
    try:
        done = {r["version"] for r in await conn.fetch(f"SELECT version FROM {schema}.schema_migrations")}
    except (asyncpg.UndefinedTableError, asyncpg.InvalidSchemaNameError, asyncpg.InsufficientPrivilegeError):
        done = set()
    if missing := sorted(wanted - done):
        raise NotMigrated(
            f"the database schema `{schema}` lacks migration(s) {', '.join(f'{v:03d}' for v in missing)}:"
            " run `paraaf db setup`"
        )


async def migrate(
    pool: asyncpg.Pool, schema: str, directories: Iterable[Path], *, messaging: bool = True, owner: str | None = None
) -> list[str]:
    """Apply what has not been applied yet, as ``owner`` when given; return the names applied now."""
    if not _SCHEMA.match(schema):
        raise ValueError(f"schema name {schema!r} must be lower-case letters, digits and _")
    log = structlog.get_logger()
    migrations = migrations_of(directories, messaging=messaging)
    applied_now = []
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"migrate:{schema}")
        await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        if owner is not None:
            await conn.execute(f'SET LOCAL ROLE "{owner}"')
        await conn.execute(
            f"CREATE TABLE IF NOT EXISTS {schema}.schema_migrations ("
            " version int PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r["version"] for r in await conn.fetch(f"SELECT version FROM {schema}.schema_migrations")}
        for version, name, sql in migrations:
            if version in done:
                continue
            await conn.execute(f"SET LOCAL search_path TO {schema}, public")
            await conn.execute(sql)
            await conn.execute(
                f"INSERT INTO {schema}.schema_migrations (version, name) VALUES ($1, $2)",
                version,
                name,
            )
            applied_now.append(name)
    if applied_now:
        log.info("migrations applied", schema=schema, migrations=applied_now)
    return applied_now


class NotSetUp(CannotStart):
    """Something ``paraaf setup`` makes is missing: the service (or command) says what and stops."""


# The schemas services share, each with its migrations and whether it has the messaging tables.
SHARED_SCHEMAS = {"blobs": (blobs.MIGRATIONS, False), "access": (apikeys.MIGRATIONS, False)}


async def open_database(
    settings: Settings, service: str, *, migrations: Path, uses: Sequence[str] = (), size: int = 1
) -> asyncpg.Pool:
    """A pool as ``service``'s own role, once its schemas are known to be up to date: how a service
    starts, and how an operator command acting for a service opens the database."""
    pool = await _connect_database(read_identity(settings, service, needs=("database_url",)).database_url, size)
    try:
        await check_migrated(pool, service, [migrations])
        for schema in uses:
            directory, messaging = SHARED_SCHEMAS[schema]
            await check_migrated(pool, schema, [directory], messaging=messaging)
    except BaseException:
        await pool.close()
        raise
    return pool


async def _connect_database(url: str, size: int) -> asyncpg.Pool:
    try:
        pool = await connect_pool(url, max_size=size)
    except asyncpg.InvalidCatalogNameError:
        raise NotSetUp("the database does not exist: run `paraaf db setup`") from None
    except asyncpg.InvalidAuthorizationSpecificationError as exc:
        raise NotSetUp(f"the database refused this service's role ({exc}): run `paraaf db setup`") from None
    if await pool.fetchval("SELECT rolsuper FROM pg_roles WHERE rolname = current_user"):
        await pool.close()
        raise NotSetUp("a service never connects as a database superuser: run `paraaf db setup` and use its roles")
    return pool
