"""The bench's arithmetic, kept apart so it can be tested: percentiles of
latencies, a rate over a window, and the lines that print a figure beside its
limit or goal."""

import math
from collections.abc import Sequence

__all__ = ["goal_mark", "latency_line", "percentile", "rate_in_window", "ratio_line"]


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100), linear between the two nearest ranks; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def rate_in_window(moments: Sequence[float], start: float, end: float) -> float:
    """Events per second among ``moments`` (monotonic seconds) that fall in [start, end)."""
    if end <= start:
        return math.nan
    return sum(start <= m < end for m in moments) / (end - start)


def goal_mark(value: float, goal: float | None, *, at_most: bool) -> str:
    """"OK" or "MISSED" against ``goal`` (``at_most``: the value must not exceed it); blank without a goal."""
    if goal is None or math.isnan(value):
        return ""
    return "OK" if (value <= goal if at_most else value >= goal) else "MISSED"


def latency_line(name: str, seconds: Sequence[float], goal_p95: float | None = None) -> str:
    """One latency's count and p50/p95/p99/max in milliseconds, with its p95 goal when it has one."""
    p50, p95, p99 = (percentile(seconds, q) * 1000 for q in (50, 95, 99))
    top = max(seconds) * 1000 if seconds else math.nan
    goal = f"  p95 goal <= {goal_p95 * 1000:.0f} ms {goal_mark(p95 / 1000, goal_p95, at_most=True)}" if goal_p95 else ""
    return f"  {name:<34} n={len(seconds):<5} p50 {p50:7.0f}  p95 {p95:7.0f}  p99 {p99:7.0f}  max {top:7.0f} ms{goal}"


def ratio_line(name: str, value: float, limit: float, *, goal: float | None = None) -> str:
    """``value`` over ``limit`` as a ratio (and a percentage), with the goal for the ratio when it has one."""
    ratio = value / limit if limit else math.nan
    goal_text = f"  goal >= {goal:.2f} {goal_mark(ratio, goal, at_most=False)}" if goal is not None else ""
    return f"  {name:<58} {value:8.2f} / {limit:8.2f} = {ratio:5.2f} ({ratio:6.1%}){goal_text}"
