"""PostgreSQL's CPU for storing and reading PDF versions, by how the blob column is compressed.

    python -m bench.blobs [--rounds N]

The versions the pipeline stores: the bench's 1- and 30-page documents signed
1, 2 and 3 times with the signer's own code (20-80 KB, mostly the signatures'
reserved zeros). In a scratch database, for each method in turn (pglz,
PostgreSQL's default; lz4; none, i.e. STORAGE EXTERNAL), a table like
blobs.blob gets ``rounds`` times each version (made unique by 4 bytes), each
insert its own statement as the signer's is; then they are read back. CPU is
the database backend's own (/proc), per blob; the table's size on disk is
printed beside it. The methods take turns over two passes, so a machine that
speeds up or slows down between them shows.
"""

import argparse
import asyncio
import hashlib
import os
import time

import asyncpg

from bench.limits import signed_chain
from bench.scratch import scratch_database
from tests.support.pdfs import make_pdf
from tests.support.signing import SigningCity

METHODS = {
    "pglz": "ALTER TABLE blob ALTER COLUMN data SET COMPRESSION pglz",
    "lz4": "ALTER TABLE blob ALTER COLUMN data SET COMPRESSION lz4",
    "none": "ALTER TABLE blob ALTER COLUMN data SET STORAGE EXTERNAL",
}


def versions() -> list[bytes]:
    credentials = SigningCity().credentials("Ann Aerts", "schepen")
    return [
        signed_chain(make_pdf(pages, text=f"Paraaf bench, {pages} page(s)"), signatures, credentials)[1]
        for pages in (1, 30) for signatures in (1, 2, 3)
    ]


def _cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def one(conn: asyncpg.Connection, method: str, pdfs: list[bytes], rounds: int) -> tuple[float, float, int]:
    """(insert CPU ms a blob, read CPU ms a blob, table bytes) for ``method``."""
    pid = await conn.fetchval("SELECT pg_backend_pid()")
    await conn.execute("DROP TABLE IF EXISTS blob; CREATE TABLE blob (sha256 text PRIMARY KEY, size integer NOT NULL, data bytea NOT NULL)")
    await conn.execute(METHODS[method])
    started = _cpu(pid)
    for n in range(rounds):
        for pdf in pdfs:
            data = pdf + n.to_bytes(4, "big")
            await conn.execute("INSERT INTO blob VALUES ($1, $2, $3)", hashlib.sha256(data).hexdigest(), len(data), data)
    inserted = _cpu(pid)
    digests = [r["sha256"] for r in await conn.fetch("SELECT sha256 FROM blob")]
    read_from = _cpu(pid)
    for digest in digests:
        await conn.fetchval("SELECT data FROM blob WHERE sha256 = $1", digest)
    read = _cpu(pid)
    blobs = rounds * len(pdfs)
    return 1000 * (inserted - started) / blobs, 1000 * (read - read_from) / blobs, await conn.fetchval("SELECT pg_total_relation_size('blob')")


async def run(rounds: int) -> None:
    pdfs = await asyncio.to_thread(versions)  # pyHanko's signing runs its own event loop
    async with scratch_database("blobs") as url:
        conn = await asyncpg.connect(url)
        try:
            print(f"blobs: {len(pdfs)} versions of {min(map(len, pdfs)) // 1000}-{max(map(len, pdfs)) // 1000} KB, {rounds} times each, per method")
            results: dict[str, list[tuple[float, float, int]]] = {m: [] for m in METHODS}
            for _ in range(2):
                for method in METHODS:
                    started = time.perf_counter()
                    results[method].append(await one(conn, method, pdfs, rounds))
                    insert, read, size = results[method][-1]
                    print(f"  {method:5s} insert {insert:.3f} ms CPU a blob, read {read:.3f}, table {size / 1e6:.1f} MB ({time.perf_counter() - started:.1f} s)")
            base = sum(r[0] for r in results["pglz"])
            for method in METHODS:
                print(f"  {method:5s} insert CPU / pglz's: {sum(r[0] for r in results[method]) / base:.2f}")
        finally:
            await conn.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=300)
    asyncio.run(run(parser.parse_args(argv).rounds))


if __name__ == "__main__":
    main()
