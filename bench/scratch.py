"""A database of a bench's own on the local PostgreSQL (``PARAAF_TEST_DATABASE_URL``, as the tests), dropped
afterwards whatever happens."""

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

__all__ = ["ADMIN_URL", "scratch_database"]

ADMIN_URL = os.environ.get("PARAAF_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


@asynccontextmanager
async def scratch_database(bench: str) -> AsyncIterator[str]:
    """The URL of a new, empty database named after ``bench``."""
    name = f"paraaf_bench_{bench}_{uuid.uuid4().hex[:8]}"
    await _as_admin(f'CREATE DATABASE "{name}"')
    try:
        yield ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        await _as_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def _as_admin(statement: str) -> None:
    admin = await asyncpg.connect(ADMIN_URL)
    try:
        await admin.execute(statement)
    finally:
        await admin.close()
