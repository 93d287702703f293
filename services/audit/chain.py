"""The hash chain, as pure functions: how a link is made and how a chain is
checked — every link, the sequence without gaps, and the head that says
where the chain ends (so removing its last entries shows too).

A consistent chain proves only that nobody edited it *without recomputing
the hashes after the edit*; someone with superuser rights can rewrite it
whole. Sealed checkpoints (seal.py), kept apart from the database, close
that gap: :class:`ChainCheck` compares the chain's hash at each checkpoint's
entry with the hash the checkpoint sealed. It takes the rows one at a time,
so a chain of any length is checked in constant memory.
"""

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

__all__ = ["GENESIS", "Break", "ChainCheck", "Link", "Sealed", "link_hash", "links", "verify_chain"]

GENESIS = "0" * 64


def link_hash(prev_hash: str, payload: str) -> str:
    return hashlib.sha256(prev_hash.encode() + b"\n" + payload.encode()).hexdigest()


@dataclass(frozen=True)
class Link:
    seq: int
    prev_hash: str
    hash: str


def links(head: tuple[int, str], payloads: Iterable[str]) -> list[Link]:
    """The links of ``payloads`` chained in order after ``head`` (its seq, its hash): what appending them makes."""
    seq, prev_hash = head
    made = []
    for payload in payloads:
        seq, digest = seq + 1, link_hash(prev_hash, payload)
        made.append(Link(seq, prev_hash, digest))
        prev_hash = digest
    return made


@dataclass(frozen=True)
class Break:
    seq: int
    reason: str


@dataclass(frozen=True)
class Sealed:
    """What a checkpoint vouches for: the chain's hash at entry ``seq``, sealed at ``sealed_at``."""

    seq: int
    head_hash: str
    sealed_at: datetime


Row = tuple[int, str, str, str]  # (seq, payload, prev_hash, hash)


def _link_break(seq: int, payload: str, stored_prev: str, stored_hash: str, expected: int, prev_hash: str) -> Break | None:
    if seq != expected:
        return Break(seq, "sequence numbers have gaps (entries were removed)")
    if stored_prev != prev_hash:
        return Break(seq, "prev_hash does not match the hash of the entry before it")
    if link_hash(prev_hash, payload) != stored_hash:
        return Break(seq, "hash does not match the entry's content")
    return None


class ChainCheck:
    """Feed the rows in order, then :meth:`finish`; the first problem found is kept in ``problem``."""

    def __init__(self, sealed: Mapping[int, Sealed] | None = None, *, prev_hash: str = GENESIS) -> None:
        self.entries = 0
        self.problem: Break | None = None
        self._sealed = dict(sealed or {})
        self._last: tuple[int, str] = (0, prev_hash)
        self._vouched = 0  # the last entry a checkpoint confirmed

    def feed(self, rows: Sequence[Row]) -> bool:
        """Check these rows; False once a problem is found (later rows are only counted)."""
        if self.problem is not None:
            self.entries += len(rows)
            return False
        last, sealed, self.entries = self._last, self._sealed, self.entries + len(rows)
        for seq, payload, stored_prev, stored_hash in rows:
            if problem := _link_break(seq, payload, stored_prev, stored_hash, last[0] + 1, last[1]):
                self.problem = problem
                return False
            last = (seq, stored_hash)
            if seq in sealed and not self._matches(sealed.pop(seq), stored_hash):
                return False
        self._last = last
        return True

    def _matches(self, checkpoint: Sealed, stored_hash: str) -> bool:
        if checkpoint.head_hash == stored_hash:
            self._vouched = checkpoint.seq
            return True
        self.problem = Break(
            checkpoint.seq,
            f"entries {self._vouched + 1} to {checkpoint.seq} were rewritten after the checkpoint sealed at"
            f" {checkpoint.sealed_at.isoformat()}: the chain's hash at entry {checkpoint.seq} is not the sealed one",
        )
        return False

    def finish(self, head: tuple[int, str] | None = None) -> Break | None:
        """The first problem, including entries removed from the end (the head, or a checkpoint past the end, says)."""
        if self.problem is None and head is not None and head != self._last and self._last[0] > 0:
            self.problem = Break(head[0], "the chain's head does not match its last entry (entries were removed)")
        if self.problem is None and self._sealed:
            beyond = min(self._sealed.values(), key=lambda checkpoint: checkpoint.seq)
            self.problem = Break(
                self._last[0] + 1,
                f"entries {self._last[0] + 1} to {beyond.seq} were removed: the checkpoint sealed at"
                f" {beyond.sealed_at.isoformat()} vouches for entry {beyond.seq}",
            )
        return self.problem


def verify_chain(rows: Iterable[Row], head: tuple[int, str] | None = None, prev_hash: str = GENESIS) -> Break | None:
    """Rows in order, and the head (last seq, last hash) when there is one: the first break, or None."""
    check = ChainCheck(prev_hash=prev_hash)
    check.feed(list(rows))
    return check.finish(head)
