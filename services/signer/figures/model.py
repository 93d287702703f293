"""The figures' pure rules: which period a query asks for, the rows a chart or a table shows, the whole of
one period's figures as JSON and as a CSV a spreadsheet opens safely, and lead times as people read them."""

import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

__all__ = [
    "MAX_DAYS", "Figures", "Period", "PeriodRefused", "Row", "csv_text", "default_period", "months_between", "parse_period",
    "short_duration", "unnamed", "with_every_month",
]

MAX_DAYS = 5 * 366  # a longer period is refused: the queries scan every row of it


class PeriodRefused(ValueError):
    """The period asked for cannot be shown (bad date, ends before it starts, too long)."""


@dataclass(frozen=True)
class Period:
    """From ``start`` to ``end``, both days included, in the city's time zone."""

    start: date
    end: date

    @property
    def end_exclusive(self) -> date:
        return self.end + timedelta(days=1)


def default_period(today: date) -> Period:
    """The last twelve months: from the first of the month eleven months back to today."""
    month = today.year * 12 + today.month - 1 - 11
    return Period(date(month // 12, month % 12 + 1, 1), today)


def parse_period(start: str | None, end: str | None, today: date) -> Period:
    """The period of the query's ``from`` and ``to`` (YYYY-MM-DD); what is missing comes from the default."""
    default = default_period(today)
    try:
        first = date.fromisoformat(start) if start else default.start
        last = date.fromisoformat(end) if end else (default.end if not start or first <= today else first)
    except ValueError:
        raise PeriodRefused("dates are written YYYY-MM-DD") from None
    if last < first:
        raise PeriodRefused("the period ends before it starts")
    if (last - first).days >= MAX_DAYS:
        raise PeriodRefused(f"a period is at most {MAX_DAYS} days")
    return Period(first, last)


def months_between(period: Period) -> list[str]:
    """Every month the period touches, as YYYY-MM."""
    months, at = [], period.start.year * 12 + period.start.month - 1
    while at <= period.end.year * 12 + period.end.month - 1:
        months.append(f"{at // 12:04d}-{at % 12 + 1:02d}")
        at += 1
    return months


@dataclass(frozen=True)
class Row:
    """One bar of a chart, one line of a table: a key (a month, a department, a person's id...) and its figures.
    ``key`` is None for rows without one: documents without a department (ad hoc steps), or the one row that
    counts confidential and shielded documents without naming anyone."""

    key: str | None
    count: int
    label: str | None = None  # a person's name beside her id
    median_seconds: float | None = None
    p90_seconds: float | None = None
    oldest_seconds: float | None = None

    def as_json(self) -> dict[str, Any]:
        return {name: value for name, value in asdict(self).items() if value is not None or name in ("key", "count")}


def with_every_month(rows: Iterable[Row], months: Sequence[str]) -> list[Row]:
    """One row per month of the period, in order, zero where nothing happened (a chart's gaps are real)."""
    counted = {row.key: row for row in rows}
    return [counted.get(month, Row(month, 0)) for month in months]


@dataclass
class Figures:
    """The figures of one period (and department), as the page, the JSON and the CSV show them."""

    org: str
    period: Period
    department: str | None
    timezone: str
    generated_at: datetime
    departments: list[str] = field(default_factory=list)
    series: dict[str, list[Row]] = field(default_factory=dict)  # "documents.by_month" -> rows

    def total(self, name: str) -> int:
        return sum(row.count for row in self.series.get(name, []))

    @property
    def totals(self) -> dict[str, int]:
        return {
            "documents": self.total("documents.by_status"), "signatures": self.total("signatures.by_action"),
            "completed": self.total("durations.completion"), "pending": self.total("pending.by_signer"),
            "substitutions": self.total("substitutions.by_month"), "declines": self.total("declines.by_month"),
            "mail_failures": self.total("mail_failures.by_month"),
        }

    def as_json(self) -> dict[str, Any]:
        grouped: dict[str, dict[str, list[dict[str, Any]]]] = {}
        for name, rows in self.series.items():
            section, figure = name.split(".", 1)
            grouped.setdefault(section, {})[figure] = [row.as_json() for row in rows]
        return {
            "org": self.org, "from": self.period.start.isoformat(), "to": self.period.end.isoformat(),
            "department": self.department, "timezone": self.timezone, "generated_at": self.generated_at.isoformat(),
            "departments": self.departments, "totals": self.totals, **grouped,
        }


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: object) -> str:
    """A CSV cell a spreadsheet shows as text: free text (a decline reason) never runs as a formula."""
    text = "" if value is None else (f"{value:.0f}" if isinstance(value, float) else str(value))
    return "'" + text if text.startswith(_FORMULA_START) else text


# The rows without a key in these figures count confidential and shielded documents; elsewhere they are
# documents without one (ad hoc steps have no flow or department).
_HIDING = ("pending.", "substitutions.for_whom", "substitutions.by_substitute", "declines.reasons", "mail_failures.reasons")


def unnamed(series: str) -> str:
    """What a row without a key stands for in ``series``: "hidden" (not named, on purpose) or "none"."""
    return "hidden" if series.startswith(_HIDING) else "none"


def csv_text(figures: Figures, labels: dict[str, str]) -> str:
    """Every figure as one table: figure, key, label, count, median, p90, oldest (seconds); ``labels`` names the
    rows without a key ("hidden", "none": see :func:`unnamed`)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["figure", "key", "label", "count", "median_seconds", "p90_seconds", "oldest_seconds"])
    for name, rows in figures.series.items():
        for row in rows:
            label = row.label if row.label is not None else (labels[unnamed(name)] if row.key is None else "")
            cells = (name, row.key, label, row.count, row.median_seconds, row.p90_seconds, row.oldest_seconds)
            writer.writerow([_cell(cell) for cell in cells])
    return out.getvalue()


def short_duration(seconds: float | None, words: dict[str, str], decimal_comma: bool) -> str:
    """A lead time as people read it: minutes under an hour, hours under two days, then days."""
    if seconds is None:
        return "–"
    if seconds < 3600:
        return words["fig_minutes"].format(n=round(seconds / 60))
    value, unit = (seconds / 3600, "fig_hours") if seconds < 48 * 3600 else (seconds / 86400, "fig_days")
    number = f"{value:.1f}"
    return words[unit].format(n=number.replace(".", ",") if decimal_comma else number)
