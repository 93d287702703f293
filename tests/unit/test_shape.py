"""The code's shape does not slide back: the median function stays short and no
function outgrows GOAL_LONGEST lines unless it is a declarative table named, with
its reason, in tests/shape.py's ALLOWED_LONG."""

import statistics

from tests.shape import ALLOWED_LONG, GOAL_LONGEST, GOAL_MEDIAN, functions, report


def test_the_median_function_is_short() -> None:
    found = functions()
    assert statistics.median(f.lines for f in found) <= GOAL_MEDIAN, report(found)


def test_no_function_passes_the_longest_goal_unless_it_is_a_declared_table() -> None:
    found = functions()
    too_long = [f"{f.key} ({f.lines} lines)" for f in found if f.lines > GOAL_LONGEST and f.key not in ALLOWED_LONG]
    assert too_long == [], f"split these into named steps, or declare them in ALLOWED_LONG with a reason: {too_long}"


def test_every_declared_exception_still_exists_and_is_still_long() -> None:
    lengths = {f.key: f.lines for f in functions()}
    stale = [key for key in ALLOWED_LONG if lengths.get(key, 0) <= GOAL_LONGEST]
    assert stale == [], f"remove from ALLOWED_LONG, they no longer need the exception: {stale}"
