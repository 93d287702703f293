"""Reading the directory and the flows from the files people maintain.

The directory is a workbook with one sheet per kind of row (``people``,
``roles``, ...): an ``.xlsx`` file, a folder of ``<sheet>.csv`` files, or a
YAML file with one list per sheet. Every bad row is reported with its sheet
and row number; a source with any bad row imports nothing.
"""

import csv
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from services.router.domain import Directory, FlowDefinition, Person, Role, RoutingError, check_steps
from shared.contract import describe_validation_error
from shared.events import StepSpec

__all__ = ["ImportError_", "Problem", "read_directory", "read_flows", "read_workbook"]

_ID = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
LANGUAGES = ("nl", "fr", "en")


@dataclass(frozen=True)
class Problem:
    where: str  # "sheet `people`, row 4" or "flows/collegebesluit.yaml"
    reason: str

    def __str__(self) -> str:
        return f"{self.where}: {self.reason}"


class ImportError_(ValueError):
    """The source has bad rows; nothing was imported."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = list(problems)


Row = dict[str, str]


@dataclass
class Workbook:
    sheets: dict[str, list[tuple[int, Row]]] = field(default_factory=dict)

    def rows(self, sheet: str) -> list[tuple[int, Row]]:
        return self.sheets.get(sheet, [])


def _clean(value: Any) -> str:
    if value is None:
        return ""
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value).strip()


def _from_table(header: Sequence[Any], rows: Iterator[Sequence[Any]], first_row: int) -> list[tuple[int, Row]]:
    names = [_clean(h).lower() for h in header]
    table = []
    for number, values in enumerate(rows, start=first_row):
        row = {name: _clean(v) for name, v in zip(names, values, strict=False) if name}
        if any(row.values()):
            table.append((number, row))
    return table


def read_workbook(path: Path) -> Workbook:
    """Sheets of ``path`` as numbered rows; row numbers are what a spreadsheet shows."""
    book = Workbook()
    if path.is_dir():
        for csv_path in sorted(path.glob("*.csv")):
            with csv_path.open(newline="", encoding="utf-8-sig") as handle:
                reader = csv.reader(handle)
                header = next(reader, [])
                book.sheets[csv_path.stem.lower()] = _from_table(header, reader, first_row=2)
    elif path.suffix.lower() == ".xlsx":
        from openpyxl import load_workbook

        workbook = load_workbook(path, read_only=True, data_only=True)
        for sheet in workbook.worksheets:
            rows = sheet.iter_rows(values_only=True)
            header = next(rows, ())
            book.sheets[sheet.title.strip().lower()] = _from_table(header, rows, first_row=2)
    elif path.suffix.lower() in (".yaml", ".yml"):
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for sheet, items in data.items():
            book.sheets[str(sheet).lower()] = [
                (number, {str(k).lower(): _join(v) for k, v in item.items()})
                for number, item in enumerate(items or [], start=1)
            ]
    else:
        raise ImportError_([Problem(str(path), "expected an .xlsx file, a .yaml file or a folder of .csv files")])
    return book


def _join(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(_clean(v) for v in value)
    return _clean(value)


def _ids(value: str) -> list[str]:
    return [part.strip() for part in re.split(r"[,;\s]+", value) if part.strip()]


def read_directory(book: Workbook) -> Directory:
    """Validate every sheet; raise ImportError_ listing every bad row."""
    problems: list[Problem] = []
    people: dict[str, Person] = {}
    for number, row in book.rows("people"):
        where = f"sheet `people`, row {number}"
        person_id = row.get("id", "").lower()
        email = row.get("email", "")
        language = (row.get("language") or "nl").lower()
        if not _ID.match(person_id):
            problems.append(Problem(where, f"id `{person_id}` must be lower-case letters, digits, `.`, `_` or `-`"))
        elif person_id in people:
            problems.append(Problem(where, f"duplicate id `{person_id}`"))
        elif not row.get("name"):
            problems.append(Problem(where, f"person `{person_id}` has no name"))
        elif not email:
            problems.append(Problem(where, f"person `{person_id}` has no email"))
        elif not _EMAIL.match(email):
            problems.append(Problem(where, f"email `{email}` of `{person_id}` is not an email address"))
        elif language not in LANGUAGES:
            problems.append(Problem(where, f"language `{language}` must be one of {', '.join(LANGUAGES)}"))
        else:
            people[person_id] = Person(
                id=person_id, name=row["name"], email=email, department=row.get("department", ""), language=language
            )
    roles: dict[str, Role] = {}
    for number, row in book.rows("roles"):
        where = f"sheet `roles`, row {number}"
        key = row.get("key", "").lower()
        holders = [h.lower() for h in _ids(row.get("holders", ""))]
        unknown = [h for h in holders if h not in people]
        if not _ID.match(key):
            problems.append(Problem(where, f"key `{key}` must be lower-case letters, digits, `.`, `_` or `-`"))
        elif key in roles:
            problems.append(Problem(where, f"duplicate role `{key}`"))
        elif not holders:
            problems.append(Problem(where, f"role `{key}` has no holders"))
        elif unknown:
            problems.append(Problem(where, f"holder `{unknown[0]}` of role `{key}` is not in sheet `people`"))
        else:
            roles[key] = Role(key=key, title=row.get("title") or key, holders=tuple(holders))
    if problems:
        raise ImportError_(problems)
    return Directory(people=people, roles=roles)


def read_flows(directory_path: Path, directory: Directory) -> list[FlowDefinition]:
    """Every ``*.yaml`` flow in a folder, checked against the directory."""
    problems: list[Problem] = []
    flows: dict[str, FlowDefinition] = {}
    paths = sorted([*directory_path.glob("*.yaml"), *directory_path.glob("*.yml")])
    if not paths:
        raise ImportError_([Problem(str(directory_path), "no flow files (*.yaml) here")])
    for path in paths:
        try:
            flow = _read_flow(yaml.safe_load(path.read_text(encoding="utf-8")), directory)
        except (yaml.YAMLError, ValidationError, RoutingError, ValueError) as exc:
            problems.append(Problem(path.name, _describe(exc)))
            continue
        if flow.key in flows:
            problems.append(Problem(path.name, f"flow key `{flow.key}` is used by another file too"))
        flows[flow.key] = flow
    if problems:
        raise ImportError_(problems)
    return list(flows.values())


def _describe(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return describe_validation_error(exc)
    if isinstance(exc, RoutingError):
        return exc.reason
    return str(exc)


def _read_flow(data: Mapping[str, Any], directory: Directory) -> FlowDefinition:
    if not isinstance(data, Mapping):
        raise ValueError("a flow file must be a mapping with key, title, department, group and steps")
    missing = [k for k in ("key", "title", "department", "steps") if k not in data]
    if missing:
        raise ValueError(f"missing field `{missing[0]}`")
    steps = tuple(StepSpec.model_validate(s) for s in data["steps"] or [])
    if not steps:
        raise ValueError("a flow needs at least one step")
    check_steps(steps, directory)
    return FlowDefinition(
        key=str(data["key"]),
        title=str(data["title"]),
        department=str(data["department"]),
        group=str(data.get("group") or data["department"]),
        confidential=bool(data.get("confidential", False)),
        steps=steps,
    )
