"""Audit benchmark: ``paraaf audit verify`` over 1,000,000 entries (with a
sealed checkpoint every 100,000), its time and its peak memory.

    python -m bench.audit [ENTRIES]

Baselines, measured in the same run on the same machine (it is shared and
noisy: read the ratios): the time of hashing the same entries in a tight
loop, in memory (the least a verify can cost); and, for memory, the same
verify over a tenth of the entries — bounded memory means the ratio stays
near 1. Each measurement runs in a process of its own, so its peak RSS
(``ru_maxrss``) is its own and not the loading's.
"""

import asyncio
import json
import resource
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import asyncpg

from services.audit import handlers
from services.audit.chain import GENESIS, link_hash
from services.audit.seal import Trust, load_sealing_key, new_sealing_key, public_key_of, seal
from services.audit.store import PostgresAuditStore
from shared.db import canonical_json, connect_pool, migrate

ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
MIGRATIONS = Path(__file__).resolve().parents[1] / "services" / "audit" / "migrations"
SEAL_EVERY = 100_000
WHEN = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


def _template() -> str:
    event = {
        "event_id": "EVENT-ID", "occurred_at": WHEN.isoformat(), "correlation_id": str(uuid.UUID(int=7)), "causation_id": None,
        "org": "default", "signer": {"id": "p00042", "name": "Person 42", "email": "p00042@stad.be"}, "step": 1,
    }
    return canonical_json({"routing_key": "document.signed", "event": event})


def payloads(count: int) -> Iterator[tuple[int, str, str]]:
    """(seq, event_id, payload) of ``count`` events the size of a real ``document.signed`` (about 300 bytes)."""
    template = _template()
    for seq in range(1, count + 1):
        event_id = str(uuid.UUID(int=seq))
        yield seq, event_id, template.replace("EVENT-ID", event_id)


def entries(count: int) -> Iterator[tuple]:
    prev = GENESIS
    for seq, event_id, payload in payloads(count):
        digest = link_hash(prev, payload)
        yield seq, uuid.UUID(event_id), "document.signed", "default", None, WHEN, payload, prev, digest
        prev = digest


async def _load(url: str, count: int, key_pem: str) -> None:
    """``count`` chained entries by COPY, the head, and a checkpoint every SEAL_EVERY entries."""
    key, columns = load_sealing_key(key_pem), ["seq", "event_id", "routing_key", "org", "document_id", "occurred_at", "payload", "prev_hash", "hash"]
    conn = await asyncpg.connect(url)
    try:
        sealed, rows = [], entries(count)

        async def feed():
            for row in rows:
                if row[0] % SEAL_EVERY == 0:
                    sealed.append(await seal(key, row[0], row[8], WHEN))
                yield row
        await conn.copy_records_to_table("log", schema_name="audit", columns=columns, records=feed())
        last = await conn.fetchrow("SELECT seq, hash FROM audit.log ORDER BY seq DESC LIMIT 1")
        await conn.execute("UPDATE audit.head SET seq = $1, hash = $2 WHERE id = 1", last["seq"], last["hash"])
        store = PostgresAuditStore(conn)
        for checkpoint in sealed:
            await store.add_checkpoint(checkpoint)
    finally:
        await conn.close()


async def _verify(url: str, trusted_key: str) -> dict:
    conn = await asyncpg.connect(url)
    try:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        started = time.perf_counter()
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            checked, problem = await handlers.verify(PostgresAuditStore(conn), trust=Trust(key=trusted_key))
        seconds = time.perf_counter() - started
    finally:
        await conn.close()
    assert problem is None, problem
    return {"entries": checked, "seconds": seconds, "rss_before_kb": before, "rss_peak_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}


def _hash_only(count: int) -> dict:
    """The baseline: the same payloads made and chained in a tight loop, nothing stored or read."""
    started, prev = time.perf_counter(), GENESIS
    for _, _, payload in payloads(count):
        prev = link_hash(prev, payload)
    return {"seconds": time.perf_counter() - started, "rss_peak_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}


def _in_own_process(*args: str) -> dict:
    done = subprocess.run([sys.executable, "-m", "bench.audit", *args], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


async def _fresh_database(count: int, key_pem: str) -> str:
    name = f"paraaf_bench_audit_{uuid.uuid4().hex[:8]}"
    await (admin := await asyncpg.connect(ADMIN_URL)).execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    url = ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    pool = await connect_pool(url, max_size=1)
    await migrate(pool, "audit", [MIGRATIONS])
    await pool.close()
    await _load(url, count, key_pem)
    return url


async def _drop(url: str) -> None:
    admin = await asyncpg.connect(ADMIN_URL)
    await admin.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')
    await admin.close()


def _measure(count: int, key_pem: str) -> tuple[float, dict]:
    """(seconds to load, the verify's own figures) for a log of ``count`` entries."""
    started = time.perf_counter()
    url = asyncio.run(_fresh_database(count, key_pem))
    loading = time.perf_counter() - started
    try:
        return loading, _in_own_process("verify", url, public_key_of(load_sealing_key(key_pem)))
    finally:
        asyncio.run(_drop(url))


def main(count: int = 1_000_000) -> None:
    key_pem = new_sealing_key()
    small_load, small = _measure(count // 10, key_pem)
    load, full = _measure(count, key_pem)
    baseline = _in_own_process("hash", str(count))
    mb = lambda kb: kb / 1024  # noqa: E731
    print(f"Verifying the audit chain ({count:,} entries, a checkpoint every {SEAL_EVERY:,}; loaded by COPY in {load:.1f} s):")
    print(f"  hashing {count:,} entries in a tight loop (baseline)  {baseline['seconds']:6.2f} s")
    print(f"  paraaf audit verify, {full['entries']:,} entries from PostgreSQL  {full['seconds']:6.2f} s"
          f"   ratio to baseline {full['seconds'] / baseline['seconds']:.2f}   ({full['entries'] / full['seconds']:,.0f} entries/s)")
    print(f"  peak RSS: verify of {count:,} {mb(full['rss_peak_kb']):.0f} MB (process before verifying {mb(full['rss_before_kb']):.0f} MB);"
          f" verify of {small['entries']:,} {mb(small['rss_peak_kb']):.0f} MB;"
          f" ratio {count:,}/{count // 10:,} {full['rss_peak_kb'] / small['rss_peak_kb']:.2f}  (the baseline loop: {mb(baseline['rss_peak_kb']):.0f} MB)")
    print(f"  (verify of {small['entries']:,} took {small['seconds']:.2f} s; loading them {small_load:.1f} s)")


if __name__ == "__main__":
    if sys.argv[1:2] == ["verify"]:
        print(json.dumps(asyncio.run(_verify(sys.argv[2], sys.argv[3]))))
    elif sys.argv[1:2] == ["hash"]:
        print(json.dumps(_hash_only(int(sys.argv[2]))))
    else:
        main(*(int(arg) for arg in sys.argv[1:2]))
