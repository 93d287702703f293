"""The figures' pure rules: which period a query means, every month in a chart, how rows are named, the CSV a
spreadsheet opens safely, and how GROUPING SETS rows are told apart."""

import csv
import io
import json
import re
from datetime import UTC, date, datetime

import pytest
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from services.signer.figures import (
    Figures,
    Period,
    PeriodRefused,
    Row,
    csv_text,
    default_period,
    months_between,
    parse_period,
    short_duration,
    unnamed,
    with_every_month,
)
from services.signer.figures.queries import grouped
from services.signer.http._figures import SECTIONS, page_context, row_label
from services.signer.http._pages import _TEMPLATES
from services.signer.i18n import texts
from services.signer.portal_texts import portal_texts

TODAY = date(2026, 11, 30)


def test_the_default_period_is_the_last_twelve_months_from_the_first_of_the_month() -> None:
    """Without dates the figures cover the current month and the eleven before it, up to today."""
    assert default_period(TODAY) == Period(date(2025, 12, 1), TODAY)
    assert default_period(date(2026, 1, 15)) == Period(date(2025, 2, 1), date(2026, 1, 15))


def test_a_period_is_read_from_the_query_and_completed_from_the_default() -> None:
    """Both dates are used as given; a missing end is today (or the start, when that lies ahead)."""
    assert parse_period("2025-01-01", "2025-12-31", TODAY) == Period(date(2025, 1, 1), date(2025, 12, 31))
    assert parse_period("2026-03-01", None, TODAY) == Period(date(2026, 3, 1), TODAY)
    assert parse_period("2027-03-01", None, TODAY) == Period(date(2027, 3, 1), date(2027, 3, 1))
    assert parse_period(None, "2026-06-30", TODAY) == Period(date(2025, 12, 1), date(2026, 6, 30))


@pytest.mark.parametrize(("start", "end"), [("2026-13-01", None), ("yesterday", None), ("2026-05-01", "2026-04-30"),
                                            ("2020-01-01", "2026-01-01")])
def test_a_period_that_cannot_be_shown_is_refused(start: str, end: str | None) -> None:
    """A bad date, an end before the start, or more than five years is refused, not guessed at."""
    with pytest.raises(PeriodRefused):
        parse_period(start, end, TODAY)


def test_every_month_of_the_period_is_a_bar_even_an_empty_one() -> None:
    """A chart per month has a bar for each month the period touches, zero where nothing happened, in order."""
    period = Period(date(2025, 11, 15), date(2026, 2, 3))
    assert months_between(period) == ["2025-11", "2025-12", "2026-01", "2026-02"]
    filled = with_every_month([Row("2026-01", 4), Row("2025-11", 2)], months_between(period))
    assert [(r.key, r.count) for r in filled] == [("2025-11", 2), ("2025-12", 0), ("2026-01", 4), ("2026-02", 0)]


def test_grouping_sets_rows_go_to_the_figure_of_the_column_they_group() -> None:
    """GROUPING() sets a bit for every column not grouped: each row lands in its own figure, a NULL key included."""
    rows = [
        {"grouping": 0b011, "month": "2026-01", "department": None, "flow_key": None, "count": 5},
        {"grouping": 0b101, "month": None, "department": None, "flow_key": None, "count": 2},  # documents without one
        {"grouping": 0b101, "month": None, "department": "Omgeving", "flow_key": None, "count": 3},
        {"grouping": 0b110, "month": None, "department": None, "flow_key": "collegebesluit", "count": 5},
    ]
    found = grouped(rows, ("month", "department", "flow_key"))  # type: ignore[arg-type]
    assert found["month"] == [Row("2026-01", 5)]
    assert found["department"] == [Row(None, 2), Row("Omgeving", 3)]
    assert found["flow_key"] == [Row("collegebesluit", 5)]


def _figures() -> Figures:
    figures = Figures("default", Period(date(2026, 1, 1), date(2026, 1, 31)), None, "Europe/Brussels", datetime(2026, 2, 1, tzinfo=UTC))
    figures.series = {
        "documents.by_month": [Row("2026-01", 7)],
        "documents.by_status": [Row("completed", 6), Row("active", 1)],
        "documents.by_department": [Row("Omgeving", 5), Row(None, 2)],
        "pending.by_signer": [Row("ann.aerts", 1, label="Ann Aerts", median_seconds=7200.4, oldest_seconds=9000.0), Row(None, 2)],
        "declines.reasons": [Row("=HYPERLINK(\"http://x\")", 1), Row("", 1)],
    }
    return figures


def test_the_csv_names_unnamed_rows_and_never_lets_a_reason_run_as_a_formula() -> None:
    """Rows without a key say why (hidden on purpose, or none); text starting like a formula is kept as text."""
    text = csv_text(_figures(), {"hidden": "confidential or shielded", "none": "none (ad hoc)"})
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["figure", "key", "label", "count", "median_seconds", "p90_seconds", "oldest_seconds"]
    assert ["documents.by_department", "", "none (ad hoc)", "2", "", "", ""] in rows
    assert ["pending.by_signer", "", "confidential or shielded", "2", "", "", ""] in rows
    assert ["pending.by_signer", "ann.aerts", "Ann Aerts", "1", "7200", "", "9000"] in rows
    assert ["declines.reasons", "'=HYPERLINK(\"http://x\")", "", "1", "", "", ""] in rows


def test_totals_and_json_come_from_the_same_rows() -> None:
    """The JSON groups figures by section; its totals are the sums of the rows shown."""
    body = _figures().as_json()
    assert body["totals"]["documents"] == 7 and body["totals"]["pending"] == 3
    assert body["documents"]["by_status"] == [{"key": "completed", "count": 6}, {"key": "active", "count": 1}]
    assert body["pending"]["by_signer"][0] == {
        "key": "ann.aerts", "count": 1, "label": "Ann Aerts", "median_seconds": 7200.4, "oldest_seconds": 9000.0,
    }
    assert body["from"] == "2026-01-01" and body["to"] == "2026-01-31"


def test_rows_are_named_in_the_readers_language() -> None:
    """Statuses, kinds, steps and unnamed rows are words; a person is her name with her id."""
    nl, fr = portal_texts("nl"), portal_texts("fr")
    assert row_label("documents.by_status", Row("completed", 1), nl) == nl["status_completed"]
    assert row_label("durations.by_step", Row("2 approve", 1), fr) == "Étape 2 (approbation)"
    assert row_label("pending.by_signer", Row(None, 1), nl) == nl["fig_unnamed_hidden"]
    assert row_label("documents.by_flow", Row(None, 1), nl) == nl["fig_unnamed_none"]
    assert row_label("pending.by_signer", Row("ann.aerts", 1, label="Ann Aerts"), nl) == "Ann Aerts (ann.aerts)"
    assert row_label("declines.reasons", Row("", 1), nl) == nl["fig_no_reason"]
    assert unnamed("substitutions.for_whom") == "hidden" and unnamed("substitutions.by_month") == "none"


def test_lead_times_read_as_minutes_hours_or_days() -> None:
    """Under an hour in minutes, under two days in hours, then days; a decimal comma in Dutch and French."""
    nl, en = portal_texts("nl"), portal_texts("en")
    assert short_duration(None, nl, True) == "–"
    assert short_duration(1500, nl, True) == "25 min"
    assert short_duration(5400, nl, True) == "1,5 u"
    assert short_duration(3 * 86400 + 43200, en, False) == "3.5 d"


@pytest.mark.parametrize("language", ["nl", "fr", "en"])
def test_the_page_reads_whole_in_each_language_and_its_charts_hold_the_tables_numbers(language: str) -> None:
    """Every word of the dashboard exists in nl, fr and en (a missing one fails the render); each chart carries
    the same numbers as the table beside it, and no row without a key is named after anyone."""
    figures = _figures()
    for _, _, parts in SECTIONS:
        for series, _, _ in parts:
            figures.series.setdefault(series, [])
    figures.series["durations.by_step"] = [Row("1 approve", 3, median_seconds=3600.0, p90_seconds=7200.0)]
    environment = Environment(loader=FileSystemLoader(str(_TEMPLATES)), autoescape=True, undefined=StrictUndefined)
    html = environment.get_template("ops_figures.html").render(
        lang=language, p=portal_texts(language), t=texts(language), visitor=None, csrf="", path="/p/ops/figures",
        refresh=None, **page_context(figures, language, "from=2026-01-01"),
    )
    p = portal_texts(language)
    assert p["fig_title"] in html and p["fig_unnamed_hidden"] in html and "Ann Aerts (ann.aerts)" in html
    assert 'href="/p/ops/figures.csv?from=2026-01-01"' in html
    charts = {m[0]: json.loads(m[1]) for m in re.findall(r'data-figure="([^"]+)" data-chart=\'([^\']*)\'', html)}
    assert charts["documents.by_month"]["datasets"][0]["values"] == [7]
    assert charts["pending.by_signer"]["labels"] == ["Ann Aerts (ann.aerts)", p["fig_unnamed_hidden"]]
    assert charts["durations.by_step"]["datasets"][1]["values"] == [2.0]
