"""The hash chain, as pure functions: how a link is made and how a chain is checked."""

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["GENESIS", "Break", "link_hash", "verify_chain"]

GENESIS = "0" * 64


def link_hash(prev_hash: str, payload: str) -> str:
    return hashlib.sha256(prev_hash.encode() + b"\n" + payload.encode()).hexdigest()


@dataclass(frozen=True)
class Break:
    seq: int
    reason: str


def verify_chain(rows: Iterable[tuple[int, str, str, str]], prev_hash: str = GENESIS) -> Break | None:
    """Rows are (seq, payload, prev_hash, hash) in order; the first broken link, or None."""
    for seq, payload, stored_prev, stored_hash in rows:
        if stored_prev != prev_hash:
            return Break(seq, "prev_hash does not match the hash of the entry before it")
        if link_hash(prev_hash, payload) != stored_hash:
            return Break(seq, "hash does not match the entry's content")
        prev_hash = stored_hash
    return None
