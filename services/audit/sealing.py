"""The audit service's sealing loop: when the service starts, every
PARAAF_SEAL_EVERY, and once more when it stops (within a few seconds, a
silent time-stamping service's token left out), the chain's head becomes a
signed checkpoint (see seal.py), so at most one period of entries is ever
unsealed. The key and its
certificate from the organisation's CA come from the audit's own secrets
file, which ``paraaf setup`` writes."""

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import asyncpg
import structlog
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pyhanko.sign.timestamps.aiohttp_client import HTTPTimeStamper

from services.audit import handlers
from services.audit.config import AuditSettings
from services.audit.seal import Checkpoint, load_certificates, load_sealing_key, public_key_of
from services.audit.store import PostgresAuditStore
from shared.credentials import stored
from shared.db import keeps_session_state
from shared.service import NotSetUp

__all__ = ["seal_once", "sealing_certificate", "sealing_key", "sealing_loop"]

# Held while a process seals: the audit service's replicas take turns, so one head is sealed once, not once each.
_SEALING_LOCK = "SELECT pg_advisory_lock(hashtext('paraaf-audit-sealing'))"
_SEALING_UNLOCK = "SELECT pg_advisory_unlock(hashtext('paraaf-audit-sealing'))"


def sealing_key(settings: AuditSettings) -> Ed25519PrivateKey:
    """The audit sealing key on file (or in PARAAF_AUDIT_SEAL_KEY); the service does not start without one."""
    pem = stored(settings, "audit").get("seal_key")
    if not pem:
        raise NotSetUp("audit has no sealing key of its own: run `paraaf setup` (or set PARAAF_AUDIT_SEAL_KEY)")
    return load_sealing_key(pem)


def sealing_certificate(settings: AuditSettings, key: Ed25519PrivateKey) -> str | None:
    """The key's certificate from the organisation's CA, as ``paraaf setup`` filed it; None (and a warning) on an
    installation set up before setup certified the key. A certificate for another key stops the service."""
    pem = stored(settings, "audit").get("seal_cert")
    if not pem:
        structlog.get_logger().warning(
            "the audit sealing key has no certificate from the organisation's CA; checkpoints are sealed without one:"
            " run `paraaf setup`"
        )
        return None
    [certificate, *_] = load_certificates(pem)
    if public_key_of(certificate.public_key()) != public_key_of(key):  # type: ignore[arg-type]
        raise NotSetUp("the audit sealing certificate on file is for another key: run `paraaf setup` to certify this one")
    return pem


# At stop the last seal may take this long at most: a supervisor (or an orchestrator) waits some seconds before
# it kills, and the stop cancels the loop again every second. The time-stamping service gets the first part of
# it; if it has not answered by then, the head is sealed without a token, which the next seal's token covers.
LAST_SEAL_SECONDS = 3.0
LAST_SEAL_TSA_SECONDS = 2.0


def sealing_loop(
    pool: Callable[[], asyncpg.Pool], key: Ed25519PrivateKey, settings: AuditSettings, certificate: str | None = None
) -> Callable[[], Awaitable[None]]:
    """The loop's body for ``Service.loop``: seal, sleep, seal ...; cancelled (the service stops), seal once more,
    within LAST_SEAL_SECONDS however often the stop cancels again."""
    timestamper = HTTPTimeStamper(settings.tsa_url, timeout=30) if settings.tsa_url else None
    log = structlog.get_logger()

    async def seal_now(timestamper: HTTPTimeStamper | None = timestamper) -> None:
        # The wall clock, never the services' clock (PARAAF_CLOCK_START/FILE): a seal says when it was made.
        checkpoint = await seal_once(pool, key, datetime.now(UTC), timestamper, certificate)
        if checkpoint is not None:
            log.info("audit chain sealed", seq=checkpoint.seq, timestamped=bool(checkpoint.timestamp_token), certified=bool(certificate))

    async def last_seal() -> None:
        if timestamper is not None:
            try:
                return await asyncio.wait_for(seal_now(), LAST_SEAL_TSA_SECONDS)
            except TimeoutError:
                log.warning("stopping: the time-stamping service did not answer in time; the last seal has no timestamp")
        await seal_now(None)

    async def sealing() -> None:
        try:
            await seal_now()  # what an earlier stop could not seal (a head already sealed is left as it is)
            while True:
                await asyncio.sleep(settings.seal_every.total_seconds())
                await seal_now()
        except asyncio.CancelledError:
            await _finish(asyncio.ensure_future(last_seal()), LAST_SEAL_SECONDS)
            raise

    return sealing


async def seal_once(
    pool: Callable[[], asyncpg.Pool],
    key: Ed25519PrivateKey,
    now: datetime,
    timestamper: HTTPTimeStamper | None = None,
    certificate: str | None = None,
) -> Checkpoint | None:
    """Seal the head unless a checkpoint covers it, one process at a time: a replica that waited for another's seal
    then finds the head sealed (or seals what was appended meanwhile). No transaction around it: the time-stamping
    call may take its 30 s, and the head it reads and the checkpoint it adds are one row each; the lock is the
    session's, and goes with the connection should the process die."""
    async with pool().acquire() as conn:
        keeps_session_state(conn)  # should the unlock below never run, the pool's reset releases the lock
        await conn.execute(_SEALING_LOCK)
        try:
            return await handlers.seal_head(PostgresAuditStore(conn), key, now, timestamper, certificate)
        finally:
            await conn.execute(_SEALING_UNLOCK)


async def _finish(work: asyncio.Future[None], seconds: float) -> None:
    """Let ``work`` run to its end or for ``seconds``, whichever comes first, through any cancellation of the
    caller (the stop cancels again every second); the caller is cancelled anyway, so it stops after this."""
    deadline = asyncio.get_running_loop().time() + seconds
    while not work.done():
        remaining = deadline - asyncio.get_running_loop().time()
        if remaining <= 0:
            break
        try:
            await asyncio.wait_for(asyncio.shield(work), remaining)
        except asyncio.CancelledError:
            continue  # the stop asked again: the last seal still has its time
        except TimeoutError:
            break
        except Exception:
            structlog.get_logger().exception("the last seal at stop failed; the next start seals the head")
            return
    if not work.done():
        work.cancel()
        structlog.get_logger().warning("the last seal at stop took too long; the next start seals the head")
