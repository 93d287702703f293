"""The hash chain, as pure functions: how a link is made and how a chain is
checked — every link, the sequence without gaps, and the head that says
where the chain ends (so removing its last entries shows too)."""

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


Row = tuple[int, str, str, str]  # (seq, payload, prev_hash, hash)


def _link_break(seq: int, payload: str, stored_prev: str, stored_hash: str, expected: int, prev_hash: str) -> Break | None:
    if seq != expected:
        return Break(seq, "sequence numbers have gaps (entries were removed)")
    if stored_prev != prev_hash:
        return Break(seq, "prev_hash does not match the hash of the entry before it")
    if link_hash(prev_hash, payload) != stored_hash:
        return Break(seq, "hash does not match the entry's content")
    return None


def verify_chain(rows: Iterable[Row], head: tuple[int, str] | None = None, prev_hash: str = GENESIS) -> Break | None:
    """Rows in order, and the head (last seq, last hash) when there is one: the first break, or None."""
    last = (0, GENESIS)
    for seq, payload, stored_prev, stored_hash in rows:
        if problem := _link_break(seq, payload, stored_prev, stored_hash, last[0] + 1, prev_hash):
            return problem
        prev_hash, last = stored_hash, (seq, stored_hash)
    if head is not None and head != last and last[0] > 0:
        return Break(head[0], "the chain's head does not match its last entry (entries were removed)")
    return None
