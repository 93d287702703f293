"""`paraaf submit`'s own rules, before anything reaches the broker: which files, which refs and titles, whose URL."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from services.cli import app
from services.source.cli import _due, _entries, _pdfs
from services.source.client import source_of_url
from shared import clock

FIELDS = {"flow": "collegebesluit", "submitted_by": "elen.elaut", "confidential": False, "language": "nl"}


def test_a_folder_gives_one_document_per_pdf_named_after_its_file(tmp_path: Path) -> None:
    """Each PDF of a folder (not its other files) is a document with external_ref REF/<file> and title TITLE: <name>."""
    for name in ("b.pdf", "a.PDF", "notes.txt"):
        (tmp_path / name).write_bytes(b"%PDF-1.7")
    entries = _entries(tmp_path, _pdfs(tmp_path), ref="zitting-7", title="Zitting 7", **FIELDS)
    assert [(e.document.external_ref, e.document.title) for e in entries] == [
        ("zitting-7/a.PDF", "Zitting 7: a"), ("zitting-7/b.pdf", "Zitting 7: b"),
    ]


def test_one_file_takes_the_ref_and_title_as_given(tmp_path: Path) -> None:
    """A single PDF is submitted with exactly the --ref and --title typed."""
    pdf = tmp_path / "besluit.pdf"
    pdf.write_bytes(b"%PDF-1.7")
    (entry,) = _entries(pdf, _pdfs(pdf), ref="BESL-42", title="Besluit 42", **FIELDS)
    assert (entry.document.external_ref, entry.document.title, entry.document.filename) == ("BESL-42", "Besluit 42", "besluit.pdf")


def test_the_source_is_read_from_its_own_broker_user() -> None:
    """Only a URL whose user is <prefix>.source.<name> names a source."""
    assert source_of_url("amqp://paraaf.source.notula:pw@host/", "paraaf") == "notula"
    assert source_of_url("amqp://guest:guest@host/", "paraaf") is None


def test_submit_refuses_credentials_that_are_not_the_sources_own(tmp_path: Path) -> None:
    """With the administrator's URL in PARAAF_AMQP_URL, submit stops before sending, naming the user it needs."""
    (tmp_path / "a.pdf").write_bytes(b"%PDF-1.7")
    result = CliRunner().invoke(
        app, ["submit", str(tmp_path), "--flow", "collegebesluit", "--source", "notula", "--submitted-by", "elen.elaut"],
        env={"PARAAF_AMQP_URL": "amqp://guest:guest@127.0.0.1:5672/", "PARAAF_BROKER_USER_PREFIX": "paraaf"},
    )
    assert result.exit_code == 2
    assert "paraaf.source.notula" in result.output


def test_due_is_a_while_from_now_or_an_instant_in_the_city_s_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """`--due 1h` is an hour after the services' clock; `--due 2026-12-01T16:00` is 16:00 in the city; gibberish is refused."""
    noon = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    monkeypatch.setattr(clock, "_installed", lambda: noon)
    assert _due("1h", "Europe/Brussels") == noon + timedelta(hours=1)
    assert _due("2026-12-01T16:00", "Europe/Brussels") == datetime(2026, 12, 1, 15, 0, tzinfo=UTC)
    assert _due("2026-12-01T16:00Z", "Europe/Brussels") == datetime(2026, 12, 1, 16, 0, tzinfo=UTC)
    assert _due(None, "Europe/Brussels") is None
    with pytest.raises(typer.BadParameter, match="neither a while"):
        _due("tomorrow", "Europe/Brussels")
