"""The queries behind the figures: one pass over each table per figure family (GROUPING SETS), in the org's
rows and the period, the department when one is asked for; read-only, in one consistent snapshot."""

from collections.abc import Iterable, Sequence
from datetime import datetime

import asyncpg

from services.signer.figures.model import Figures, Period, Row, months_between, with_every_month

__all__ = ["FiguresReader", "grouped"]

LIST_LIMIT = 100  # rows of a per-person or per-reason list
TEXT_LIMIT = 200  # characters of a reason shown

# $1 org, $2 start, $3 end (exclusive), $4 department or NULL, $5 time zone.
_IN_DEPARTMENT = "($4::text IS NULL OR i.department = $4)"
_HIDDEN = "(i.confidential OR coalesce(g.shielded, false))"
_GROUP = "LEFT JOIN router.groups g ON g.org = i.org AND g.key = i.group_key"

_DOCUMENTS = f"""
SELECT GROUPING(year, month, i.department, i.flow_key, d.source, i.status) AS grouping,
       year, month, i.department, i.flow_key, d.source, i.status, count(*) AS count
  FROM router.instances i
  LEFT JOIN intake.documents d ON d.document_id = i.document_id
 CROSS JOIN LATERAL (SELECT to_char(i.created_at AT TIME ZONE $5, 'YYYY') AS year,
                            to_char(i.created_at AT TIME ZONE $5, 'YYYY-MM') AS month) local
 WHERE i.org = $1 AND i.created_at >= $2 AND i.created_at < $3 AND {_IN_DEPARTMENT}
 GROUP BY GROUPING SETS ((year), (month), (i.department), (i.flow_key), (d.source), (i.status))
"""

_SIGNATURES = f"""
SELECT GROUPING(year, month, i.department, i.flow_key, d.source, r.action) AS grouping,
       year, month, i.department, i.flow_key, d.source, r.action, count(*) AS count
  FROM router.requests r
  JOIN router.instances i ON i.document_id = r.document_id
  LEFT JOIN intake.documents d ON d.document_id = r.document_id
 CROSS JOIN LATERAL (SELECT to_char(r.decided_at AT TIME ZONE $5, 'YYYY') AS year,
                            to_char(r.decided_at AT TIME ZONE $5, 'YYYY-MM') AS month) local
 WHERE r.org = $1 AND r.status = 'signed' AND r.decided_at >= $2 AND r.decided_at < $3 AND {_IN_DEPARTMENT}
 GROUP BY GROUPING SETS ((year), (month), (i.department), (i.flow_key), (d.source), (r.action))
"""

_PERCENTILES = """count(*) AS count,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY seconds) AS median,
       percentile_cont(0.9) WITHIN GROUP (ORDER BY seconds) AS p90"""

# Completion is the last signature's decision: the router completes the document in that same transaction
# (its updated_at moves again when a late signature is recorded).
_COMPLETION = f"""
WITH done AS (
  SELECT i.flow_key, extract(epoch FROM max(r.decided_at) - i.created_at)::float8 AS seconds, max(r.decided_at) AS completed_at
    FROM router.instances i JOIN router.requests r ON r.document_id = i.document_id AND r.status = 'signed'
   WHERE i.org = $1 AND i.status = 'completed' AND i.updated_at >= $2 AND {_IN_DEPARTMENT}
   GROUP BY i.document_id, i.flow_key, i.created_at)
SELECT GROUPING(flow_key) AS grouping, flow_key, {_PERCENTILES}
  FROM done WHERE completed_at >= $2 AND completed_at < $3
 GROUP BY GROUPING SETS ((), (flow_key))
"""

# A step's time: from its first request to its last signature, for steps that are over (the document went on
# past them, or completed). Requests moved to a substitute count from the first one.
_STEPS = f"""
WITH steps AS (
  SELECT r.step, min(r.action) AS action,
         extract(epoch FROM max(r.decided_at) FILTER (WHERE r.status = 'signed') - min(r.created_at))::float8 AS seconds,
         max(r.decided_at) FILTER (WHERE r.status = 'signed') AS done_at
    FROM router.requests r JOIN router.instances i ON i.document_id = r.document_id
   WHERE r.org = $1 AND (i.status = 'completed' OR i.current_step > r.step) AND i.updated_at >= $2 AND {_IN_DEPARTMENT}
   GROUP BY r.document_id, r.step)
SELECT step, action, {_PERCENTILES}
  FROM steps WHERE done_at >= $2 AND done_at < $3
 GROUP BY step, action ORDER BY step, action
"""

_PENDING = f"""
SELECT who, max(name) AS name, count(*) AS count,
       extract(epoch FROM $3 - min(created_at))::float8 AS oldest,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM $3 - created_at)::float8) AS median
  FROM (SELECT CASE WHEN {_HIDDEN} THEN NULL ELSE r.person_id END AS who,
               CASE WHEN {_HIDDEN} THEN NULL ELSE r.person->>'name' END AS name, r.created_at
          FROM router.requests r JOIN router.instances i ON i.document_id = r.document_id {_GROUP}
         WHERE r.org = $1 AND r.status = 'pending' AND i.status = 'active' AND ($2::text IS NULL OR i.department = $2)) pending
 GROUP BY who ORDER BY count(*) DESC, who NULLS LAST LIMIT {LIST_LIMIT}
"""

_SUBSTITUTIONS = f"""
SELECT GROUPING(month, for_id, by_id) AS grouping, month, for_id, max(for_name) AS for_name, by_id,
       max(by_name) AS by_name, count(*) AS count
  FROM (SELECT to_char(r.created_at AT TIME ZONE $5, 'YYYY-MM') AS month,
               CASE WHEN {_HIDDEN} THEN NULL ELSE r.on_behalf_of->>'id' END AS for_id,
               CASE WHEN {_HIDDEN} THEN NULL ELSE r.on_behalf_of->>'name' END AS for_name,
               CASE WHEN {_HIDDEN} THEN NULL ELSE r.person_id END AS by_id,
               CASE WHEN {_HIDDEN} THEN NULL ELSE r.person->>'name' END AS by_name
          FROM router.requests r JOIN router.instances i ON i.document_id = r.document_id {_GROUP}
         WHERE r.org = $1 AND r.on_behalf_of IS NOT NULL AND r.created_at >= $2 AND r.created_at < $3
           AND {_IN_DEPARTMENT}) substituted
 GROUP BY GROUPING SETS ((month), (for_id), (by_id))
"""

# The reason is in the signer's signature.declined event (the router keeps only that it was declined).
_DECLINES = f"""
SELECT GROUPING(month, reason) AS grouping, month, reason, count(*) AS count
  FROM (SELECT to_char(r.decided_at AT TIME ZONE $5, 'YYYY-MM') AS month,
               CASE WHEN {_HIDDEN} THEN NULL ELSE left(btrim(coalesce(said.reason, '')), {TEXT_LIMIT}) END AS reason
          FROM router.requests r JOIN router.instances i ON i.document_id = r.document_id {_GROUP}
          LEFT JOIN LATERAL (
                SELECT (l.payload::jsonb)->'event'->>'reason' AS reason FROM audit.log l
                 WHERE l.document_id = r.document_id AND l.routing_key = 'signature.declined'
                   AND (l.payload::jsonb)->'event'->>'request_id' = r.request_id::text
                 ORDER BY l.seq LIMIT 1) said ON true
         WHERE r.org = $1 AND r.status = 'declined' AND r.decided_at >= $2 AND r.decided_at < $3
           AND {_IN_DEPARTMENT}) declined
 GROUP BY GROUPING SETS ((month), (reason))
"""

_MAIL_FAILURES = f"""
SELECT GROUPING(month, kind, reason) AS grouping, month, kind, reason, count(*) AS count
  FROM (SELECT to_char(l.occurred_at AT TIME ZONE $5, 'YYYY-MM') AS month, e->>'kind' AS kind,
               CASE WHEN {_HIDDEN} THEN NULL ELSE left(btrim(coalesce(e->>'reason', '')), {TEXT_LIMIT}) END AS reason
          FROM audit.log l
          LEFT JOIN router.instances i ON i.document_id = l.document_id {_GROUP}
         CROSS JOIN LATERAL (SELECT (l.payload::jsonb)->'event' AS e) payload
         WHERE l.routing_key = 'notification.failed' AND l.org = $1 AND l.occurred_at >= $2 AND l.occurred_at < $3
           AND ($4::text IS NULL OR i.department = $4)) failed
 GROUP BY GROUPING SETS ((month), (kind), (reason))
"""


def grouped(rows: Iterable[asyncpg.Record], columns: Sequence[str]) -> dict[str, list[Row]]:
    """Rows of a GROUPING SETS query, one list per column: GROUPING() has every bit set but the grouped column's."""
    everything = (1 << len(columns)) - 1
    found: dict[str, list[Row]] = {column: [] for column in columns}
    for record in rows:
        for position, column in enumerate(columns):
            if record["grouping"] == everything ^ (1 << (len(columns) - 1 - position)):
                found[column].append(Row(record[column], record["count"]))
    return found


def _largest_first(rows: list[Row], limit: int | None = None) -> list[Row]:
    ordered = sorted(rows, key=lambda row: (-row.count, row.key is None, row.key or ""))
    return ordered[:limit] if limit else ordered


def _by_key(rows: list[Row]) -> list[Row]:
    return sorted(rows, key=lambda row: row.key or "")


class FiguresReader:
    """The queries behind the figures, for one org; read-only, each bounded by the period."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def figures(self, org: str, period: Period, department: str | None, timezone: str, now: datetime) -> Figures:
        """Every figure, read in one consistent snapshot (the dashboard's totals agree with each other); ``now``
        is the services' clock, which stamped the router's rows."""
        async with self._conn.transaction(isolation="repeatable_read", readonly=True):
            start, end = await self._conn.fetchrow(
                "SELECT ($1::date)::timestamp AT TIME ZONE $3, ($2::date)::timestamp AT TIME ZONE $3",
                period.start, period.end_exclusive, timezone,
            )
            args = (org, start, end, department, timezone)
            figures = Figures(org, period, department, timezone, now, departments=await self.departments(org))
            months = months_between(period)
            await self._documents(figures, args, months)
            await self._durations(figures, args)
            await self._people(figures, args, months)
            await self._declines_and_mail(figures, args, months)
        return figures

    async def departments(self, org: str) -> list[str]:
        rows = await self._conn.fetch("SELECT DISTINCT department FROM router.flows WHERE org = $1 ORDER BY department", org)
        return [r["department"] for r in rows]

    async def _documents(self, figures: Figures, args: tuple, months: list[str]) -> None:
        columns = ("year", "month", "department", "flow_key", "source")
        for name, query, last in (("documents", _DOCUMENTS, "status"), ("signatures", _SIGNATURES, "action")):
            found = grouped(await self._conn.fetch(query, *args), (*columns, last))
            figures.series[f"{name}.by_year"] = _by_key(found["year"])
            figures.series[f"{name}.by_month"] = with_every_month(found["month"], months)
            figures.series[f"{name}.by_department"] = _largest_first(found["department"])
            figures.series[f"{name}.by_flow"] = _largest_first(found["flow_key"])
            figures.series[f"{name}.by_source"] = _largest_first(found["source"])
            figures.series[f"{name}.by_{last}"] = _largest_first(found[last])

    async def _durations(self, figures: Figures, args: tuple) -> None:
        completion = await self._conn.fetch(_COMPLETION, *args[:4])
        figures.series["durations.completion"] = [
            Row("all", r["count"], median_seconds=r["median"], p90_seconds=r["p90"]) for r in completion if r["grouping"] == 1
        ]
        figures.series["durations.completion_by_flow"] = _largest_first([
            Row(r["flow_key"], r["count"], median_seconds=r["median"], p90_seconds=r["p90"]) for r in completion if r["grouping"] == 0
        ])
        steps = await self._conn.fetch(_STEPS, *args[:4])
        figures.series["durations.by_step"] = [
            Row(f"{r['step']} {r['action']}", r["count"], median_seconds=r["median"], p90_seconds=r["p90"]) for r in steps
        ]

    async def _people(self, figures: Figures, args: tuple, months: list[str]) -> None:
        pending = await self._conn.fetch(_PENDING, args[0], args[3], figures.generated_at)
        figures.series["pending.by_signer"] = [
            Row(r["who"], r["count"], label=r["name"], median_seconds=r["median"], oldest_seconds=r["oldest"]) for r in pending
        ]
        rows = await self._conn.fetch(_SUBSTITUTIONS, *args)
        figures.series["substitutions.by_month"] = with_every_month(
            [Row(r["month"], r["count"]) for r in rows if r["grouping"] == 3], months
        )
        figures.series["substitutions.for_whom"] = _largest_first(
            [Row(r["for_id"], r["count"], label=r["for_name"]) for r in rows if r["grouping"] == 5], LIST_LIMIT
        )
        figures.series["substitutions.by_substitute"] = _largest_first(
            [Row(r["by_id"], r["count"], label=r["by_name"]) for r in rows if r["grouping"] == 6], LIST_LIMIT
        )

    async def _declines_and_mail(self, figures: Figures, args: tuple, months: list[str]) -> None:
        declines = grouped(await self._conn.fetch(_DECLINES, *args), ("month", "reason"))
        figures.series["declines.by_month"] = with_every_month(declines["month"], months)
        figures.series["declines.reasons"] = _largest_first(declines["reason"], LIST_LIMIT)
        failures = grouped(await self._conn.fetch(_MAIL_FAILURES, *args), ("month", "kind", "reason"))
        figures.series["mail_failures.by_month"] = with_every_month(failures["month"], months)
        figures.series["mail_failures.by_kind"] = _largest_first(failures["kind"])
        figures.series["mail_failures.reasons"] = _largest_first(failures["reason"], LIST_LIMIT)
