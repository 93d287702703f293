"""Reading the directory spreadsheet: every bad row reported by sheet and row, good ones understood."""

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from services.router.domain import ImportRefused
from services.router.importer import parse_moment, read_directory, read_workbook
from tests.support.workbook import CITY, city_with, write

BRUSSELS = ZoneInfo("Europe/Brussels")


def problems_of(path: Path) -> list[str]:
    with pytest.raises(ImportRefused) as caught:
        read_directory(read_workbook(path))
    return [str(p) for p in caught.value.problems]


def test_the_demo_city_reads_with_its_substitutes_and_absences(tmp_path: Path) -> None:
    """The demo .xlsx yields the mayor, the mayor's ordered substitutes and the July absence in Brussels time."""
    directory = read_directory(read_workbook(write(tmp_path / "city.xlsx")))
    assert directory.roles["burgemeester"].holders == ("bart.baert",)
    assert directory.substitutes["bart.baert"] == ("sofie.smet", "marc.maes")
    [july] = directory.absences["bart.baert"]
    assert july.starts_at == datetime(2026, 7, 1, tzinfo=BRUSSELS)
    assert july.ends_at == datetime(2026, 8, 1, tzinfo=BRUSSELS)
    assert directory.groups["ocmw"].shielded


def test_mutual_substitutes_are_allowed(tmp_path: Path) -> None:
    """Sofie stands in for Marc and Marc for Sofie: a normal arrangement, not an error."""
    directory = read_directory(read_workbook(write(tmp_path / "city.xlsx")))
    assert directory.substitutes["sofie.smet"] == ("marc.maes",)
    assert directory.substitutes["marc.maes"] == ("sofie.smet",)


def test_five_kinds_of_bad_rows_are_each_reported_with_sheet_and_row(tmp_path: Path) -> None:
    """Unknown person, duplicate id, own substitute, bad date and missing email: all five reported, each at its row."""
    sheets = city_with(
        people=[["bart.baert", "Bart Bis", "bart2@demo.paraaf.be", "Bestuur", "nl"], ["jan.janssens", "Jan Janssens", "", "Bestuur", "nl"]],
        substitutes=[["nobody.here", "sofie.smet"], ["lies.leys", "lies.leys"]],
        absences=[["sofie.smet", "31/02/2026", "2026-03-10"]],
    )
    people_rows, substitute_rows, absence_rows = len(CITY["people"]), len(CITY["substitutes"]), len(CITY["absences"])
    problems = problems_of(write(tmp_path / "bad.xlsx", sheets))
    assert problems == [
        f"sheet `people`, row {people_rows + 1}: duplicate id `bart.baert`",
        f"sheet `people`, row {people_rows + 2}: person `jan.janssens` has no email",
        f"sheet `substitutes`, row {substitute_rows + 1}: person `nobody.here` is not in sheet `people`",
        f"sheet `substitutes`, row {substitute_rows + 2}: `lies.leys` is listed as their own substitute",
        f"sheet `absences`, row {absence_rows + 1}: bad date in `from` ('31/02/2026') or `to` ('2026-03-10');"
        " write 2026-07-01 or 01/07/2026",
    ]


def test_an_absence_that_ends_before_it_starts_is_refused(tmp_path: Path) -> None:
    """`to` is the first day back, so it must come after `from`."""
    sheets = city_with(absences=[["sofie.smet", "2026-07-10", "2026-07-01"]])
    [problem] = problems_of(write(tmp_path / "bad.xlsx", sheets))
    assert "must come after `from`" in problem


def test_a_folder_of_csv_files_reads_like_the_workbook(tmp_path: Path) -> None:
    """The same sheets as CSV files give the same directory as the .xlsx."""
    for sheet, rows in CITY.items():
        (tmp_path / f"{sheet}.csv").write_text("\n".join(",".join(f'"{c}"' for c in row) for row in rows))
    from_csv = read_directory(read_workbook(tmp_path))
    from_xlsx = read_directory(read_workbook(write(tmp_path / "city.xlsx")))
    assert from_csv == from_xlsx


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("2026-07-01", datetime(2026, 7, 1, tzinfo=BRUSSELS)),
        ("01/07/2026", datetime(2026, 7, 1, tzinfo=BRUSSELS)),
        ("1-7-2026", datetime(2026, 7, 1, tzinfo=BRUSSELS)),
        ("2026-07-01 14:30", datetime(2026, 7, 1, 14, 30, tzinfo=BRUSSELS)),
        ("2026-07-01T12:30:00+00:00", datetime(2026, 7, 1, 14, 30, tzinfo=BRUSSELS)),
    ],
)
def test_dates_are_read_as_people_type_them(typed: str, expected: datetime) -> None:
    """ISO and Belgian day-month-year dates are local time unless they carry an offset."""
    assert parse_moment(typed) == expected


def test_a_manager_must_be_another_person_of_the_sheet(tmp_path: Path) -> None:
    """`manager` is optional; when given, it names someone else in sheet `people` (the demo: Hilde manages Karel)."""
    assert read_directory(read_workbook(write(tmp_path / "city.xlsx"))).people["karel.claes"].manager == "hilde.hendrickx"
    sheets = city_with(people=[["jan.janssens", "Jan Janssens", "jan@demo.paraaf.be", "Bestuur", "nl", "nobody.here"],
                               ["els.eggers", "Els Eggers", "els@demo.paraaf.be", "Bestuur", "nl", "els.eggers"]])
    rows = len(CITY["people"])
    assert problems_of(write(tmp_path / "bad.xlsx", sheets)) == [
        f"sheet `people`, row {rows + 1}: manager `nobody.here` of `jan.janssens` is not another person in sheet `people`",
        f"sheet `people`, row {rows + 2}: manager `els.eggers` of `els.eggers` is not another person in sheet `people`",
    ]


def test_how_a_person_hears_of_requests_is_individual_unless_the_sheet_says_digest(tmp_path: Path) -> None:
    """Column `mails` is optional: empty is `individual`, `digest` is kept, anything else is refused naming the row."""
    sheets = city_with(people=[["jan.janssens", "Jan Janssens", "jan@demo.paraaf.be", "Bestuur", "nl", "", "Digest"],
                               ["els.eggers", "Els Eggers", "els@demo.paraaf.be", "Bestuur", "nl", "", ""]])
    sheets["people"][0] = [*sheets["people"][0], "mails"]
    people = read_directory(read_workbook(write(tmp_path / "city.xlsx", sheets))).people
    assert (people["jan.janssens"].mails, people["els.eggers"].mails, people["ann.aerts"].mails) == ("digest", "individual", "individual")
    sheets["people"].append(["kim.kets", "Kim Kets", "kim@demo.paraaf.be", "Bestuur", "nl", "", "weekly"])
    assert problems_of(write(tmp_path / "bad.xlsx", sheets)) == [
        f"sheet `people`, row {len(sheets['people'])}: mails `weekly` of `kim.kets` must be one of individual, digest",
    ]
