"""The audit log's hash chain: any change to an entry breaks it where the change is."""

from services.audit.chain import GENESIS, link_hash, verify_chain


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
