"""The year in figures for operators (/p/ops/figures): documents and
signatures per year, month, department, flow and source; median and p90 time
from submission to completion and per step; pending requests per signer and
their age; substitutions; declines and their reasons; mail failures.

Everything is counted in SQL over what the router keeps (instances,
requests), intake's documents (their source) and the audit log (decline
reasons, mail failures), in the org's own rows, for one period in the city's
time zone and optionally one department. Timestamps are the services' clock
(the router stamps its rows with it), so "now" is the services' clock too.

Operators see metadata only. Counts are metadata, but a figure that names a
person or repeats a signer's words can say more than a count: "pending for
Karel" on a disciplinary file tells whoever reads the dashboard (or the CSV
passed around after it) that Karel has a disciplinary file. So figures that
name a person (pending per signer, substitutions for whom and by whom) and
free text (decline reasons, mail failure reasons) come only from documents an
operator may read in full; those of confidential documents and of shielded
groups are counted together in one row without a name (key ``None``). The
totals stay exact.
"""

from services.signer.figures.model import (
    MAX_DAYS,
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
from services.signer.figures.queries import FiguresReader

__all__ = [
    "MAX_DAYS", "Figures", "FiguresReader", "Period", "PeriodRefused", "Row", "csv_text", "default_period", "months_between",
    "parse_period", "short_duration", "unnamed", "with_every_month",
]
