"""Sealed checkpoints on real PostgreSQL: an edited entry is named, a log
rewritten whole by a superuser (hashes recomputed) is caught by the exported
checkpoints, and a forged checkpoint is refused."""

import asyncio
import base64
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest
from pyhanko.sign.timestamps.aiohttp_client import HTTPTimeStamper

from services.audit import handlers
from services.audit.chain import GENESIS, link_hash
from services.audit.config import AuditSettings
from services.audit.seal import Checkpoint, Trust, check_checkpoint, load_sealing_key, new_sealing_key, public_key_of
from services.audit.sealing import LAST_SEAL_SECONDS, seal_once, sealing_key, sealing_loop
from services.audit.store import PostgresAuditStore
from shared.db import connect_pool
from tests.support.audit_log import record
from tests.support.commands import paraaf
from tests.support.tsa import TimestampAuthority

ROOT = Path(__file__).resolve().parents[2]
KEY = load_sealing_key(new_sealing_key())
NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


async def seal(audit_pool: asyncpg.Pool, at: datetime = NOW, key=KEY) -> Checkpoint | None:
    async with audit_pool.acquire() as conn, conn.transaction():
        return await handlers.seal_head(PostgresAuditStore(conn), key, at)


async def verify(audit_pool: asyncpg.Pool, exported: list[Checkpoint] = ()) -> tuple[int, object]:
    async with audit_pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        return await handlers.verify(PostgresAuditStore(conn), exported, trust=Trust(key=public_key_of(KEY)))


async def stored_checkpoints(audit_pool: asyncpg.Pool) -> list[Checkpoint]:
    async with audit_pool.acquire() as conn:
        return await PostgresAuditStore(conn).checkpoints()


async def rewrite_whole_log(audit_pool: asyncpg.Pool, seq: int, old: str, new: str) -> None:
    """What a superuser can do: change entry ``seq``, recompute every hash after it, move the head, drop the checkpoints."""
    async with audit_pool.acquire() as conn, conn.transaction():
        await conn.execute("ALTER TABLE audit.log DISABLE TRIGGER log_append_only")
        rows = await conn.fetch("SELECT seq, payload FROM audit.log ORDER BY seq")
        prev, updates = GENESIS, []
        for row in rows:
            payload = row["payload"].replace(old, new) if row["seq"] == seq else row["payload"]
            digest = link_hash(prev, payload)
            updates.append((row["seq"], payload, prev, digest))
            prev = digest
        await conn.executemany("UPDATE audit.log SET payload = $2, prev_hash = $3, hash = $4 WHERE seq = $1", updates)
        await conn.execute("UPDATE audit.head SET hash = $1 WHERE id = 1", prev)
        await conn.execute("ALTER TABLE audit.log ENABLE TRIGGER log_append_only")
        await conn.execute("TRUNCATE audit.checkpoints")


async def test_sealing_stores_a_signed_checkpoint_of_the_head_once(audit_pool: asyncpg.Pool) -> None:
    """The head is sealed with a good signature; sealing an idle log again adds nothing; the log verifies."""
    await record(audit_pool, 4)
    checkpoint = await seal(audit_pool)
    assert checkpoint is not None and checkpoint.seq == 4
    assert await check_checkpoint(checkpoint, Trust(key=public_key_of(KEY))) is None
    assert await seal(audit_pool, NOW + timedelta(hours=1)) is None
    assert await stored_checkpoints(audit_pool) == [checkpoint]
    assert await verify(audit_pool) == (4, None)


async def test_the_checkpoints_table_refuses_updates(audit_pool: asyncpg.Pool) -> None:
    """A checkpoint, once stored, cannot be changed through SQL without disabling its guard."""
    await record(audit_pool, 1)
    await seal(audit_pool)
    with pytest.raises(asyncpg.RaiseError, match="append-only"):
        await audit_pool.execute("UPDATE audit.checkpoints SET head_hash = 'x'")


async def test_one_payload_altered_by_a_superuser_is_named(audit_pool: asyncpg.Pool) -> None:
    """Entry 3's payload changed with the trigger disabled: verify names entry 3."""
    await record(audit_pool, 5)
    await seal(audit_pool)
    await audit_pool.execute("ALTER TABLE audit.log DISABLE TRIGGER log_append_only")
    await audit_pool.execute("UPDATE audit.log SET payload = replace(payload, '\"n\":2', '\"n\":9') WHERE seq = 3")
    entries, problem = await verify(audit_pool)
    assert entries == 5 and problem is not None and problem.seq == 3


async def test_a_consistent_rewrite_passes_the_chain_but_not_the_exported_checkpoints(audit_pool: asyncpg.Pool) -> None:
    """Entry 5 rewritten with every hash recomputed and the stored checkpoints dropped: the chain alone says intact;
    with the checkpoints exported before, verify names the first checkpoint that differs and the entries since the last good one."""
    for hour in range(3):
        await record(audit_pool, 3)
        await seal(audit_pool, NOW + timedelta(hours=hour))
    exported = [Checkpoint.from_json(c.to_json()) for c in await stored_checkpoints(audit_pool)]
    await rewrite_whole_log(audit_pool, 5, '"n":1', '"n":7')
    assert await verify(audit_pool) == (9, None)
    entries, problem = await verify(audit_pool, exported)
    assert entries == 9 and problem is not None and problem.seq == 6
    assert "entries 4 to 6 were rewritten" in problem.reason


async def test_a_rewrite_that_leaves_the_stored_checkpoints_is_caught_by_them(audit_pool: asyncpg.Pool) -> None:
    """Even without an export, checkpoints left in the database catch a rewrite: only the sealing key could re-seal."""
    await record(audit_pool, 3)
    await seal(audit_pool)
    async with audit_pool.acquire() as conn:
        kept = await PostgresAuditStore(conn).checkpoints()
    await rewrite_whole_log(audit_pool, 2, '"n":1', '"n":8')
    _, problem = await verify(audit_pool, kept)
    assert problem is not None and problem.seq == 3 and "rewritten" in problem.reason


async def test_removed_entries_are_caught_by_a_checkpoint_past_the_end(audit_pool: asyncpg.Pool) -> None:
    """The last two entries deleted and the head moved back: the checkpoint still vouches for them."""
    await record(audit_pool, 4)
    await seal(audit_pool)
    exported = await stored_checkpoints(audit_pool)
    async with audit_pool.acquire() as conn, conn.transaction():
        await conn.execute("ALTER TABLE audit.log DISABLE TRIGGER log_append_only")
        await conn.execute("DELETE FROM audit.log WHERE seq > 2")
        await conn.execute("UPDATE audit.head SET seq = 2, hash = (SELECT hash FROM audit.log WHERE seq = 2)")
        await conn.execute("TRUNCATE audit.checkpoints")
    _, problem = await verify(audit_pool, exported)
    assert problem is not None and problem.seq == 3 and "entries 3 to 4 were removed" in problem.reason


async def test_a_forged_checkpoint_is_reported(audit_pool: asyncpg.Pool) -> None:
    """A checkpoint whose hash was changed after signing, or one signed by another key, is refused."""
    await record(audit_pool, 2)
    good = await seal(audit_pool)
    assert good is not None
    altered = replace(good, head_hash="f" * 64)
    _, problem = await verify(audit_pool, [altered])
    assert problem is not None and "does not match its contents" in problem.reason
    other = await handlers.seal_head(_Head(2, good.head_hash), load_sealing_key(new_sealing_key()), NOW)
    _, problem = await verify(audit_pool, [other])
    assert problem is not None and "not the audit sealing key" in problem.reason


class _Head:
    """Just enough of a store to seal a given head with another key: how a forger would make a checkpoint."""

    def __init__(self, seq: int, digest: str) -> None:
        self._head = (seq, digest)

    async def head(self) -> tuple[int, str]:
        return self._head

    async def checkpoints(self) -> list[Checkpoint]:
        return []

    async def add_checkpoint(self, checkpoint: Checkpoint) -> None:
        return None


async def test_the_loop_seals_every_period_and_once_more_when_stopped(audit_pool: asyncpg.Pool) -> None:
    """PARAAF_SEAL_EVERY=0.2 s: the head is sealed while the loop runs, and what came after is sealed when it is cancelled."""
    settings = AuditSettings(seal_every=timedelta(seconds=0.2))
    await record(audit_pool, 2)
    task = asyncio.create_task(sealing_loop(lambda: audit_pool, KEY, settings)())
    for _ in range(50):
        if await stored_checkpoints(audit_pool):
            break
        await asyncio.sleep(0.1)
    assert [c.seq for c in await stored_checkpoints(audit_pool)] == [2]
    await record(audit_pool, 1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert [c.seq for c in await stored_checkpoints(audit_pool)] == [2, 3]


async def test_with_a_tsa_a_checkpoint_carries_a_timestamp_over_its_contents(audit_pool: asyncpg.Pool) -> None:
    """A checkpoint sealed with a TSA carries an RFC 3161 token whose imprint is the checkpoint's; it verifies."""
    tsa = TimestampAuthority()
    await tsa.start()
    try:
        await record(audit_pool, 1)
        async with audit_pool.acquire() as conn, conn.transaction():
            stamped = await handlers.seal_head(PostgresAuditStore(conn), KEY, NOW, HTTPTimeStamper(tsa.url))
    finally:
        await tsa.stop()
    assert stamped is not None and stamped.timestamp_token and tsa.requests == 1
    assert await check_checkpoint(stamped, Trust(key=public_key_of(KEY))) is None
    assert "timestamp token for other contents" in await check_checkpoint(
        replace(stamped, seq=2, signature=_resign(stamped)), Trust()
    )


def _resign(checkpoint: Checkpoint) -> str:
    """The signature a holder of the key would make for entry 2: only the timestamp token gives the change away."""
    return base64.b64encode(KEY.sign(replace(checkpoint, seq=2).message())).decode()


async def test_the_operator_exports_checkpoints_and_verify_catches_the_rewrite(
    database_url: str, shell: dict[str, str], tmp_path: Path
) -> None:
    """After `paraaf setup`: seal with the key on file, export, rewrite as superuser; verify is intact alone, broken with the file."""
    admin = await connect_pool(database_url)
    try:
        await record(admin, 4)
        settings = AuditSettings(secrets_dir=shell["PARAAF_SECRETS_DIR"])
        async with admin.acquire() as conn, conn.transaction():
            await handlers.seal_head(PostgresAuditStore(conn), sealing_key(settings), NOW)
        exported = paraaf(shell, "audit", "checkpoints", "export", "-o", str(tmp_path / "seals.jsonl"))
        assert exported.returncode == 0, exported.stderr
        await rewrite_whole_log(admin, 1, '"n":0', '"n":5')
    finally:
        await admin.close()
    alone = paraaf(shell, "audit", "verify")
    assert alone.returncode == 0 and "intact: 4 entries" in alone.stdout, alone.stdout + alone.stderr
    caught = paraaf(shell, "audit", "verify", "--checkpoints", str(tmp_path / "seals.jsonl"))
    assert caught.returncode == 1 and "BROKEN at entry 4: entries 1 to 4 were rewritten" in caught.stdout, caught.stdout


class SilentTsa:
    """A time-stamping service that takes the connection and never answers."""

    async def __aenter__(self) -> str:
        self._server = await asyncio.start_server(self._hold, "127.0.0.1", 0)
        self._held: list[asyncio.StreamWriter] = []
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}/"

    async def _hold(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._held.append(writer)

    async def __aexit__(self, *exc: object) -> None:
        for writer in self._held:
            writer.close()
        self._server.close()


async def stop_as_the_service_does(task: asyncio.Task) -> float:
    """Cancel every second until the loop ends, as Service._stop_loops does; how long it took."""
    began = asyncio.get_running_loop().time()
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=1.0)
    return asyncio.get_running_loop().time() - began


async def test_a_stop_with_a_silent_tsa_still_seals_the_head_in_bounded_time_without_a_token(audit_pool: asyncpg.Pool) -> None:
    """The time-stamping service takes the connection and never answers: the stop, cancelling again every
    second, still ends with the head sealed (signed, no token) within the last seal's bound, not after the TSA's
    30 s; the next start seals nothing twice."""
    async with SilentTsa() as url:
        settings = AuditSettings(seal_every=timedelta(hours=1), tsa_url=url)
        await record(audit_pool, 3)
        async with audit_pool.acquire() as conn:
            started_sealed = await handlers.seal_head(PostgresAuditStore(conn), KEY, NOW)  # sealed before, without a TSA
        assert started_sealed is not None and started_sealed.seq == 3
        task = asyncio.create_task(sealing_loop(lambda: audit_pool, KEY, settings)())
        await asyncio.sleep(0.2)  # the loop started: the head was sealed already, so nothing to do
        await record(audit_pool, 2)
        took = await stop_as_the_service_does(task)
    assert took < LAST_SEAL_SECONDS + 1.0
    last = (await stored_checkpoints(audit_pool))[-1]
    assert last.seq == 5 and not last.timestamp_token
    assert await check_checkpoint(last, Trust(key=public_key_of(KEY))) is None
    assert [c.seq for c in await stored_checkpoints(audit_pool)] == [3, 5]


async def test_what_a_stop_left_unsealed_is_sealed_when_the_loop_starts(audit_pool: asyncpg.Pool) -> None:
    """Entries appended after the last seal (a stop that could not seal, a crash) are sealed at the next start,
    not an hour later."""
    await record(audit_pool, 2)
    task = asyncio.create_task(sealing_loop(lambda: audit_pool, KEY, AuditSettings(seal_every=timedelta(hours=1)))())
    for _ in range(50):
        if await stored_checkpoints(audit_pool):
            break
        await asyncio.sleep(0.1)
    assert [c.seq for c in await stored_checkpoints(audit_pool)] == [2]
    await stop_as_the_service_does(task)
    assert [c.seq for c in await stored_checkpoints(audit_pool)] == [2]  # nothing new: nothing sealed twice


async def test_two_audit_processes_sealing_at_once_seal_the_head_once(audit_pool: asyncpg.Pool) -> None:
    """Two replicas of the audit service sealing at the same moment (a time-stamping service in between) leave one
    checkpoint of the head, not one each."""
    await record(audit_pool, 3)
    tsa = TimestampAuthority()
    await tsa.start()
    try:
        made = await asyncio.gather(*(seal_once(lambda: audit_pool, KEY, NOW, HTTPTimeStamper(tsa.url)) for _ in range(2)))
    finally:
        await tsa.stop()
    assert sum(checkpoint is not None for checkpoint in made) == 1
    assert [c.seq for c in await stored_checkpoints(audit_pool)] == [3]
