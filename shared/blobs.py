"""Content-addressed blob store (schema ``blobs``), owned by intake and the
signer: a PDF version is named by its SHA-256 and never changes (neither
service may update or delete one), and writing the same bytes twice is
harmless.

``versions`` says which blob is which revision of which document: intake
registers revision 0 (what it accepted), the signer each version it signed.
That is how the signer knows it signs only what intake accepted.
"""

import hashlib
from importlib.resources import files
from pathlib import Path
from uuid import UUID

import asyncpg

__all__ = ["MIGRATIONS", "BlobNotFound", "get_blob", "put_blob", "register_version", "sha256_hex", "version_digests"]

MIGRATIONS = Path(str(files("shared").joinpath("blob_migrations")))


class BlobNotFound(LookupError):
    """No blob has this digest."""


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


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


async def register_version(conn: asyncpg.Connection, document_id: UUID, revision: int, org: str, digest: str) -> None:
    await conn.execute(
        "INSERT INTO blobs.versions (document_id, revision, org, sha256) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        document_id,
        revision,
        org,
        digest,
    )


async def version_digests(conn: asyncpg.Connection | asyncpg.Pool, document_id: UUID, org: str) -> list[str]:
    """The document's versions, revision 0 (what intake accepted) first; empty when intake never accepted it."""
    rows = await conn.fetch(
        "SELECT sha256 FROM blobs.versions WHERE document_id = $1 AND org = $2 ORDER BY revision", document_id, org
    )
    return [r["sha256"] for r in rows]
