"""The reports some test packages print at the end of a run (what the fault tests did to Paraaf, the attacks the
security tests tried), gathered wherever the tests ran and printed by the process that reports the run.

Tests run in pytest's own process or in pytest-xdist workers. A line is kept with the position of the test that
wrote it in the run's collection, which is the same in every worker, so the printed report reads in the order a
sequential run writes it, whichever worker ran which test. tests/conftest.py carries the lines from the workers
to the controller (xdist's ``workeroutput``) and, for a run made of several passes (``make test``: a parallel pass,
then a serial one), through a file (``--reports-file``) to the pass that prints them.
"""

import json
from collections.abc import Iterable
from pathlib import Path

__all__ = ["Lines", "add", "combined", "gathered", "load", "merge", "now_running", "printable", "save"]

Lines = dict[str, list[tuple[int, int, str]]]  # section -> (position of the test, order within it, line)

_lines: Lines = {}
_position = -1  # of the test that is running; -1 before the first (lines from session fixtures come first)
_order = 0


def now_running(position: int) -> None:
    global _position
    _position = position


def add(section: str, line: str) -> None:
    """Add ``line`` to ``section`` of the report printed at the end of the run."""
    global _order
    _order += 1
    _lines.setdefault(section, []).append((_position, _order, line))


def gathered() -> Lines:
    return _lines


def merge(lines: Lines) -> None:
    """Take in the lines another process gathered (an xdist worker's)."""
    for section, entries in lines.items():
        _lines.setdefault(section, []).extend(tuple(entry) for entry in entries)  # type: ignore[misc]


def in_order(lines: Lines) -> dict[str, list[str]]:
    return {section: [line for *_, line in sorted(entries)] for section, entries in sorted(lines.items())}


def load(path: Path) -> dict[str, list[str]]:
    """The report of the earlier passes of this run, as ``save`` left it (nothing when there were none)."""
    return json.loads(path.read_text()) if path.exists() else {}


def save(path: Path, sections: dict[str, list[str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(sections, ensure_ascii=False, indent=1))


def combined(earlier: dict[str, list[str]], now: Lines) -> dict[str, list[str]]:
    """The earlier passes' lines, then this pass's, section by section."""
    sections = {section: list(lines) for section, lines in earlier.items()}
    for section, lines in in_order(now).items():
        sections.setdefault(section, []).extend(lines)
    return dict(sorted(sections.items()))


def printable(sections: dict[str, list[str]]) -> Iterable[tuple[str, list[str]]]:
    return ((section, lines) for section, lines in sections.items() if lines)
