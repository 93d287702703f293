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
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml
from pydantic import ValidationError

from services.router.domain import Absence, Directory, FlowDefinition, Group, ImportRefused, Person, Problem, Role, check_steps
from shared.contract import LANGUAGES, describe_validation_error
from shared.errors import CodedError
from shared.events import StepSpec

__all__ = ["SHEETS", "parse_moment", "read_directory", "read_flows", "read_workbook"]

_ID = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
SHEETS = ("people", "roles", "substitutes", "absences", "groups")
MAIL_PREFERENCES = ("individual", "digest")  # sheet `people`, column `mails` (optional; individual when empty)


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
        raise ImportRefused([Problem(str(path), "expected an .xlsx file, a .yaml file or a folder of .csv files")])
    return book


def _join(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(_clean(v) for v in value)
    return _clean(value)


def _ids(value: str) -> list[str]:
    return [part.strip() for part in re.split(r"[,;\s]+", value) if part.strip()]


def parse_moment(value: str, timezone: str = "Europe/Brussels") -> datetime:
    """A date or date-time as people type it (2026-07-01, 01/07/2026, 2026-07-01 14:00), local unless it says otherwise."""
    text = value.strip().replace("/", "-")
    match = re.fullmatch(r"(\d{1,2})-(\d{1,2})-(\d{4})(.*)", text)
    if match:  # Belgian order: day-month-year
        day, month, year, rest = match.groups()
        text = f"{year}-{int(month):02d}-{int(day):02d}{rest}"
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo(timezone))
    return moment


def _people(book: Workbook, problems: list[Problem]) -> dict[str, Person]:
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
        elif (mails := (row.get("mails") or "individual").lower()) not in MAIL_PREFERENCES:
            problems.append(Problem(where, f"mails `{mails}` of `{person_id}` must be one of {', '.join(MAIL_PREFERENCES)}"))
        else:
            people[person_id] = Person(
                id=person_id, name=row["name"], email=email, department=row.get("department", ""), language=language,
                manager=row.get("manager", "").lower(), mails=mails,
            )
    return _with_known_managers(people, book, problems)


def _with_known_managers(people: dict[str, Person], book: Workbook, problems: list[Problem]) -> dict[str, Person]:
    """Each `manager` names another person of the sheet."""
    for number, row in book.rows("people"):
        person = people.get(row.get("id", "").lower())
        if person is None or not person.manager:
            continue
        if person.manager not in people or person.manager == person.id:
            problems.append(Problem(f"sheet `people`, row {number}", f"manager `{person.manager}` of `{person.id}` is not another person in sheet `people`"))
    return people


def _roles(book: Workbook, people: Mapping[str, Person], problems: list[Problem]) -> dict[str, Role]:
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
    return roles


def _substitutes(book: Workbook, people: Mapping[str, Person], problems: list[Problem]) -> dict[str, tuple[str, ...]]:
    substitutes: dict[str, tuple[str, ...]] = {}
    for number, row in book.rows("substitutes"):
        where = f"sheet `substitutes`, row {number}"
        person_id = row.get("person", "").lower()
        row_ids = [s.lower() for s in _ids(row.get("substitutes", ""))]
        unknown = [s for s in row_ids if s not in people]
        if person_id not in people:
            problems.append(Problem(where, f"person `{person_id}` is not in sheet `people`"))
        elif person_id in substitutes:
            problems.append(Problem(where, f"`{person_id}` has a second row; list all substitutes in one row, in order"))
        elif not row_ids:
            problems.append(Problem(where, f"`{person_id}` has no substitutes listed"))
        elif unknown:
            problems.append(Problem(where, f"substitute `{unknown[0]}` of `{person_id}` is not in sheet `people`"))
        elif person_id in row_ids:
            problems.append(Problem(where, f"`{person_id}` is listed as their own substitute"))
        elif len(set(row_ids)) != len(row_ids):
            problems.append(Problem(where, f"a substitute of `{person_id}` is listed twice"))
        else:
            substitutes[person_id] = tuple(row_ids)
    return substitutes


def _absences(
    book: Workbook, people: Mapping[str, Person], problems: list[Problem], timezone: str
) -> dict[str, tuple[Absence, ...]]:
    absences: dict[str, list[Absence]] = {}
    for number, row in book.rows("absences"):
        where = f"sheet `absences`, row {number}"
        person_id = row.get("person", "").lower()
        if person_id not in people:
            problems.append(Problem(where, f"person `{person_id}` is not in sheet `people`"))
            continue
        try:
            starts_at = parse_moment(row.get("from", ""), timezone)
            ends_at = parse_moment(row.get("to", ""), timezone)
        except ValueError:
            problems.append(
                Problem(where, f"bad date in `from` ({row.get('from', '')!r}) or `to` ({row.get('to', '')!r}); write 2026-07-01 or 01/07/2026")
            )
            continue
        if ends_at <= starts_at:
            problems.append(Problem(where, f"`to` ({row['to']}) must come after `from` ({row['from']}); `to` is the first day back"))
            continue
        absences.setdefault(person_id, []).append(Absence(person_id, starts_at, ends_at))
    return {person_id: tuple(items) for person_id, items in absences.items()}


def _groups(book: Workbook, problems: list[Problem]) -> dict[str, Group]:
    groups: dict[str, Group] = {}
    for number, row in book.rows("groups"):
        where = f"sheet `groups`, row {number}"
        key = row.get("key", "").lower()
        shielded = row.get("shielded", "").lower()
        if not _ID.match(key):
            problems.append(Problem(where, f"key `{key}` must be lower-case letters, digits, `.`, `_` or `-`"))
        elif key in groups:
            problems.append(Problem(where, f"duplicate group `{key}`"))
        elif shielded not in ("", "yes", "no", "true", "false", "ja", "nee", "1", "0"):
            problems.append(Problem(where, f"shielded `{shielded}` must be yes or no"))
        else:
            departments = tuple(d.strip() for d in re.split(r"[,;]", row.get("departments", "")) if d.strip())
            groups[key] = Group(key=key, departments=departments, shielded=shielded in ("yes", "true", "ja", "1"))
    return groups


def read_directory(book: Workbook, timezone: str = "Europe/Brussels") -> Directory:
    """Validate every sheet; raise ImportRefused listing every bad row, in sheet order."""
    problems: list[Problem] = []
    unknown_sheets = set(book.sheets) - set(SHEETS)
    for sheet in sorted(unknown_sheets):
        problems.append(Problem(f"sheet `{sheet}`", f"unknown sheet; expected {', '.join(SHEETS)}"))
    people = _people(book, problems)
    directory = Directory(
        people=people,
        roles=_roles(book, people, problems),
        substitutes=_substitutes(book, people, problems),
        absences=_absences(book, people, problems, timezone),
        groups=_groups(book, problems),
    )
    if problems:
        raise ImportRefused(problems)
    return directory


def read_flows(directory_path: Path, directory: Directory) -> list[FlowDefinition]:
    """Every ``*.yaml`` flow in a folder, checked against the directory."""
    problems: list[Problem] = []
    flows: dict[str, FlowDefinition] = {}
    paths = sorted([*directory_path.glob("*.yaml"), *directory_path.glob("*.yml")])
    if not paths:
        raise ImportRefused([Problem(str(directory_path), "no flow files (*.yaml) here")])
    for path in paths:
        try:
            flow = _read_flow(yaml.safe_load(path.read_text(encoding="utf-8")), directory)
        except (yaml.YAMLError, ValidationError, CodedError, ValueError) as exc:
            problems.append(Problem(path.name, _describe(exc)))
            continue
        if flow.key in flows:
            problems.append(Problem(path.name, f"flow key `{flow.key}` is used by another file too"))
        flows[flow.key] = flow
    if problems:
        raise ImportRefused(problems)
    return list(flows.values())


def _describe(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return describe_validation_error(exc)
    if isinstance(exc, CodedError):
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
    group = str(data.get("group") or data["department"]).lower()
    if directory.groups and group not in directory.groups:
        raise ValueError(f"group `{group}` is not in the directory's sheet `groups`")
    return FlowDefinition(
        key=str(data["key"]),
        title=str(data["title"]),
        department=str(data["department"]),
        group=group,
        confidential=bool(data.get("confidential", False)),
        steps=steps,
    )
