"""`paraaf directory import` against a real database: all or nothing, and the same twice."""

from pathlib import Path

import asyncpg

from tests.support.commands import paraaf
from tests.support.workbook import city_with, write

ROOT = Path(__file__).resolve().parents[2]


async def count_people(database_url: str) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        if await conn.fetchval("SELECT to_regclass('router.people')") is None:
            return 0  # nothing was ever imported: not even the schema exists
        return await conn.fetchval("SELECT count(*) FROM router.people")
    finally:
        await conn.close()


async def test_a_spreadsheet_with_bad_rows_imports_nothing_and_names_every_row(
    database_url: str, shell: dict[str, str], tmp_path: Path
) -> None:
    """Five kinds of bad rows: the command fails, prints each with its sheet and row, and the directory stays empty."""
    bad = write(
        tmp_path / "bad.xlsx",
        city_with(
            people=[["bart.baert", "Bart Bis", "b2@x.be", "Bestuur", "nl"], ["jan.janssens", "Jan", "", "Bestuur", "nl"]],
            substitutes=[["nobody.here", "sofie.smet"], ["lies.leys", "lies.leys"]],
            absences=[["sofie.smet", "next week", "2026-03-10"]],
        ),
    )
    result = paraaf(shell, "directory", "import", str(bad))
    assert result.returncode == 1
    assert "Nothing imported: 5 problem(s)." in result.stdout
    for expected in (
        "sheet `people`, row 15: duplicate id `bart.baert`",
        "sheet `people`, row 16: person `jan.janssens` has no email",
        "sheet `substitutes`, row 7: person `nobody.here` is not in sheet `people`",
        "sheet `substitutes`, row 8: `lies.leys` is listed as their own substitute",
        "sheet `absences`, row 3: bad date in `from` ('next week')",
    ):
        assert expected in result.stdout, result.stdout
    assert await count_people(database_url) == 0


async def test_importing_the_same_spreadsheet_twice_changes_nothing_the_second_time(
    database_url: str, shell: dict[str, str], tmp_path: Path
) -> None:
    """The second import of the same file reports no additions, changes or removals."""
    city = write(tmp_path / "city.xlsx", city_with())
    first = paraaf(shell, "directory", "import", str(city))
    second = paraaf(shell, "directory", "import", str(city))
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    assert "Imported people: 13 added, 0 changed, 0 removed" in first.stdout
    assert second.stdout.count("0 added, 0 changed, 0 removed") == 5, second.stdout
    assert await count_people(database_url) == 13


async def test_a_dry_run_reports_but_changes_nothing(database_url: str, shell: dict[str, str], tmp_path: Path) -> None:
    """--dry-run says what would change and leaves the directory as it was."""
    result = paraaf(shell, "directory", "import", "--dry-run", str(write(tmp_path / "city.xlsx", city_with())))
    assert "Would import people: 13 added" in result.stdout
    assert await count_people(database_url) == 0


async def test_a_person_a_flow_still_names_cannot_be_removed(database_url: str, shell: dict[str, str], tmp_path: Path) -> None:
    """Removing the mayor while a loaded flow names the burgemeester role is refused, and nothing changes."""
    assert paraaf(shell, "directory", "import", str(write(tmp_path / "city.xlsx", city_with()))).returncode == 0
    assert paraaf(shell, "flows", "load", str(ROOT / "deploy" / "demo" / "flows")).returncode == 0
    smaller = city_with()
    smaller["roles"] = [row for row in smaller["roles"] if row[0] != "burgemeester"]
    result = paraaf(shell, "directory", "import", str(write(tmp_path / "smaller.xlsx", smaller)))
    assert result.returncode == 1
    assert "flow `collegebesluit`: names role:burgemeester, which this import removes" in result.stdout
