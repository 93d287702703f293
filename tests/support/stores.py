"""The PostgreSQL side of a store contract test: a migrated schema and one connection
inside a transaction that is rolled back afterwards, so every test starts empty."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg

from shared.db import connect_pool, migrate

__all__ = ["in_rolled_back_transaction"]


@asynccontextmanager
async def in_rolled_back_transaction(database_url: str, *schemas: tuple[str, Path, bool]) -> AsyncIterator[asyncpg.Connection]:
    """``schemas`` are (schema, migrations directory, with inbox/outbox tables) in migration order."""
    pool = await connect_pool(database_url)
    try:
        for schema, directory, messaging in schemas:
            await migrate(pool, schema, [directory], messaging=messaging)
        async with pool.acquire() as conn:
            transaction = conn.transaction()
            await transaction.start()
            try:
                yield conn
            finally:
                await transaction.rollback()
    finally:
        await pool.close()
