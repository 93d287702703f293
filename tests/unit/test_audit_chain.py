"""The audit log's hash chain: any change to an entry breaks it where the change is."""

from datetime import UTC, datetime

from services.audit.chain import GENESIS, ChainCheck, Sealed, link_hash, verify_chain

WHEN = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


def chain(payloads: list[str]) -> list[tuple[int, str, str, str]]:
    rows, prev = [], GENESIS
    for seq, payload in enumerate(payloads, start=1):
        digest = link_hash(prev, payload)
        rows.append((seq, payload, prev, digest))
        prev = digest
    return rows


def test_an_untouched_chain_verifies() -> None:
    """A chain as written has no break."""
    assert verify_chain(chain(["a", "b", "c"])) is None


def test_an_edited_entry_is_found() -> None:
    """Changing the content of entry 2 is reported at entry 2."""
    rows = chain(["a", "b", "c"])
    rows[1] = (2, "B", rows[1][2], rows[1][3])
    problem = verify_chain(rows)
    assert problem is not None and problem.seq == 2


def test_a_removed_entry_is_found() -> None:
    """Dropping entry 2 is reported at the entry after the gap."""
    rows = chain(["a", "b", "c"])
    problem = verify_chain([rows[0], rows[2]])
    assert problem is not None and problem.seq == 3


def test_a_rehashed_entry_still_breaks_the_next_link() -> None:
    """Recomputing the hash of an edited entry moves the break to the entry after it."""
    rows = chain(["a", "b", "c"])
    rows[1] = (2, "B", rows[1][2], link_hash(rows[1][2], "B"))
    problem = verify_chain(rows)
    assert problem is not None and problem.seq == 3


def test_a_chain_rehashed_whole_is_caught_at_the_first_checkpoint_it_no_longer_matches() -> None:
    """Entry 3 edited and every hash recomputed: the links hold, but the checkpoint at entry 4 names entries 3 to 4."""
    original = chain(["a", "b", "c", "d", "e"])
    sealed = {seq: Sealed(seq, original[seq - 1][3], WHEN) for seq in (2, 4)}
    check = ChainCheck(sealed)
    check.feed(chain(["a", "b", "C", "d", "e"]))
    problem = check.finish()
    assert problem is not None and problem.seq == 4 and "entries 3 to 4 were rewritten" in problem.reason
    assert check.entries == 5


def test_a_checkpoint_past_the_end_says_entries_were_removed() -> None:
    """A chain cut after entry 2, with its head moved back, still misses entry 3 a checkpoint vouched for."""
    original = chain(["a", "b", "c"])
    check = ChainCheck({3: Sealed(3, original[2][3], WHEN)})
    check.feed(original[:2])
    problem = check.finish((2, original[1][3]))
    assert problem is not None and problem.seq == 3 and "were removed" in problem.reason


def test_rows_fed_in_batches_check_as_one_chain() -> None:
    """Batch boundaries change nothing: the links across them are checked too."""
    rows = chain([str(n) for n in range(7)])
    check = ChainCheck({7: Sealed(7, rows[-1][3], WHEN)})
    assert all(check.feed(rows[start : start + 3]) for start in range(0, 7, 3))
    assert check.finish((7, rows[-1][3])) is None and check.entries == 7
