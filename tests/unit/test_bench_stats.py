"""The bench's arithmetic (bench/stats.py): percentiles, rates over a window, and the lines that set a figure
against its limit and goal."""

import math

from bench.stats import goal_mark, latency_line, percentile, rate_in_window, ratio_line


def test_a_percentile_lies_between_the_two_nearest_ranks() -> None:
    """The 50th of 1..4 is 2.5, the 95th of 1..100 is 95.05, the 0th and 100th are the ends; no values give NaN."""
    assert percentile([4, 1, 3, 2], 50) == 2.5
    assert math.isclose(percentile(list(range(1, 101)), 95), 95.05)
    assert (percentile([7, 3, 5], 0), percentile([7, 3, 5], 100)) == (3, 7)
    assert math.isnan(percentile([], 95))


def test_a_rate_counts_only_the_moments_inside_its_window() -> None:
    """Moments before the window's start or at its end are left out: 3 inside a 2-second window is 1.5 a second."""
    assert rate_in_window([0.5, 1.0, 1.5, 2.9, 3.0, 4.0], 1.0, 3.0) == 1.5
    assert math.isnan(rate_in_window([1.0], 2.0, 2.0))


def test_a_goal_is_met_or_missed_in_the_direction_it_is_set() -> None:
    """A ceiling is met at or under it, a floor at or over it; no goal or no value prints nothing."""
    assert goal_mark(0.3, 0.3, at_most=True) == "OK"
    assert goal_mark(0.31, 0.3, at_most=True) == "MISSED"
    assert goal_mark(0.49, 0.5, at_most=False) == "MISSED"
    assert goal_mark(1.0, None, at_most=True) == goal_mark(math.nan, 1.0, at_most=True) == ""


def test_a_ratio_line_shows_both_figures_their_ratio_and_the_goal() -> None:
    """6 signatures/s against a limit of 10 prints 0.60 (60.0%) and meets a goal of 0.50."""
    line = ratio_line("pipeline / bare", 6.0, 10.0, goal=0.5)
    assert "6.00 /    10.00 =  0.60 ( 60.0%)" in line
    assert line.endswith("goal >= 0.50 OK")
    assert "MISSED" in ratio_line("pipeline / bare", 4.0, 10.0, goal=0.5)


def test_a_latency_line_prints_milliseconds_and_judges_the_p95() -> None:
    """Latencies in seconds print as milliseconds; a p95 over its goal is marked missed."""
    line = latency_line("click → confirmation", [0.1] * 90 + [0.5] * 10, goal_p95=0.3)
    assert "n=100" in line and "p50     100" in line and "max     500" in line
    assert line.endswith("MISSED")
    assert latency_line("x", [0.1, 0.2], goal_p95=0.3).endswith("OK")
