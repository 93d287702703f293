"""Spreadsheets for tests, written with openpyxl like a department head's .xlsx."""

import copy
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "deploy" / "demo"))
from build_city import SHEETS as CITY  # noqa: E402
from build_city import write  # noqa: E402

sys.path.pop(0)

__all__ = ["CITY", "city_with", "write"]


def city_with(**rows: list[list[str]]) -> dict[str, list[list[str]]]:
    """The demo city with extra rows appended to the named sheets."""
    sheets = copy.deepcopy(CITY)
    for sheet, extra in rows.items():
        sheets.setdefault(sheet, [[]]).extend(extra)
    return sheets
