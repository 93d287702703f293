"""Audit's use cases: every event on ``esign.events`` that its owner published
joins the chain, as published (fields the audit does not know are kept) —
under load, many at once, in the order they came; the
chain's head is sealed into a signed checkpoint; and the whole chain can be
checked, against the checkpoints too, in batches (a log of millions of
entries is checked in the memory of one batch)."""

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

import structlog
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.audit.chain import Break, ChainCheck, Sealed
from services.audit.seal import Checkpoint, Trust, check_checkpoint, seal
from services.audit.store import AuditStore
from shared.events import Event
from shared.messaging import Delivery

if TYPE_CHECKING:  # only a type here: pyHanko is heavy, and `paraaf audit verify` imports this module
    from pyhanko.sign.timestamps.api import TimeStamper

__all__ = ["on_event", "on_events", "seal_head", "verify"]


async def on_event(event: Event, store: AuditStore, delivery: Delivery) -> None:
    seq = await store.append(event.routing_key, json.loads(delivery.body))
    structlog.get_logger().debug("event recorded", seq=seq)


async def on_events(events: Sequence[tuple[Event, Delivery]], store: AuditStore) -> None:
    """A batch, in order: the entries :func:`on_event` would make one by one, with the chain's head moved once."""
    seqs = await store.append_many([(event.routing_key, json.loads(delivery.body)) for event, delivery in events])
    structlog.get_logger().debug("events recorded", first=seqs[0], last=seqs[-1])


async def seal_head(
    store: AuditStore,
    key: Ed25519PrivateKey,
    now: datetime,
    timestamper: "TimeStamper | None" = None,
    certificate: str | None = None,
) -> Checkpoint | None:
    """Seal the chain's head unless a checkpoint already covers it (an idle log needs no new seal); the
    checkpoint carries ``certificate``, the key's from the organisation's CA, when there is one."""
    seq, head_hash = await store.head()
    sealed = await store.checkpoints()
    if seq == 0 or (sealed and sealed[-1].seq == seq and sealed[-1].head_hash == head_hash):
        return None
    checkpoint = await seal(key, seq, head_hash, now, timestamper, certificate)
    await store.add_checkpoint(checkpoint)
    return checkpoint


async def _trusted(checkpoints: Iterable[Checkpoint], trust: Trust) -> tuple[dict[int, Sealed], Break | None]:
    """The checkpoints by entry, or the first one that cannot be trusted."""
    by_seq: dict[int, Sealed] = {}
    for checkpoint in checkpoints:
        if why := await check_checkpoint(checkpoint, trust):
            return {}, Break(checkpoint.seq, f"the checkpoint sealed at {checkpoint.sealed_at.isoformat()} {why}")
        if by_seq.get(checkpoint.seq, checkpoint.sealed()).head_hash != checkpoint.head_hash:
            return {}, Break(checkpoint.seq, "two checkpoints, both well signed, seal different hashes for this entry")
        by_seq[checkpoint.seq] = checkpoint.sealed()
    return by_seq, None


async def verify(
    store: AuditStore, checkpoints: Iterable[Checkpoint] = (), *, trust: Trust = Trust()
) -> tuple[int, Break | None]:
    """Walk the whole chain, checking it against the stored checkpoints and ``checkpoints`` (from an export):
    (entries checked, first problem or None). Only checkpoints ``trust`` vouches for count (seal.check_checkpoint)."""
    sealed, problem = await _trusted([*await store.checkpoints(), *checkpoints], trust)
    if problem is not None:
        return 0, problem
    check = ChainCheck(sealed)
    async for batch in store.batches():
        check.feed(batch)  # after a problem, the rest is only counted
    return check.entries, check.finish(await store.head())
