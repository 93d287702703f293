"""Content-addressed blob store (schema ``blobs``): a PDF version is named by
its SHA-256 and never changes, so every service may read any version it is
told about and writing the same bytes twice is harmless.
"""

import hashlib
from importlib.resources import files
from pathlib import Path

import asyncpg

from shared.db import migrate

__all__ = ["BlobNotFound", "get_blob", "migrate_blobs", "put_blob", "sha256_hex"]


class BlobNotFound(LookupError):
    """No blob has this digest."""


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def migrate_blobs(pool: asyncpg.Pool) -> None:
    await migrate(pool, "blobs", [Path(str(files("shared").joinpath("blob_migrations")))], messaging=False)


async def put_blob(conn: asyncpg.Connection, data: bytes) -> str:
    digest = sha256_hex(data)
    await conn.execute(
        "INSERT INTO blobs.blob (sha256, size, data) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        digest,
        len(data),
        data,
    )
    return digest


async def get_blob(conn: asyncpg.Connection | asyncpg.Pool, digest: str) -> bytes:
    data = await conn.fetchval("SELECT data FROM blobs.blob WHERE sha256 = $1", digest)
    if data is None:
        raise BlobNotFound(digest)
    return data
