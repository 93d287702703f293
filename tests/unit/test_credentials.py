"""What a service reads of its own credentials file: only the fields it needs, and a missing one named with the file."""

import json
from pathlib import Path

import pytest

from shared.credentials import MissingCredentials, read_identity
from shared.settings import Settings


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    for field in ("AMQP_URL", "DATABASE_URL", "SIGNER_KEY", "SEAL_KEY"):
        monkeypatch.delenv(f"PARAAF_ROUTER_{field}", raising=False)
    return Settings(secrets_dir=tmp_path)


def _file(settings: Settings, **values: str) -> Path:
    path = settings.secrets_path / "router.json"
    path.write_text(json.dumps(values))
    return path


def test_a_caller_that_needs_only_the_database_gets_it_from_a_file_without_a_broker_url(settings: Settings) -> None:
    """read_identity(needs=("database_url",)) answers from a file that holds no amqp_url."""
    _file(settings, database_url="postgresql://paraaf_router:pw@db/paraaf")
    assert read_identity(settings, "router", needs=("database_url",)).database_url == "postgresql://paraaf_router:pw@db/paraaf"


def test_a_missing_needed_field_is_named_with_the_file_it_was_looked_for_in(settings: Settings) -> None:
    """A file without the database URL a caller needs: the error names the field, the file and the variable to set."""
    path = _file(settings, amqp_url="amqp://paraaf.router:pw@mq/")
    with pytest.raises(MissingCredentials) as refused:
        read_identity(settings, "router", needs=("database_url",))
    assert "database_url" in str(refused.value) and str(path) in str(refused.value)
    assert "PARAAF_ROUTER_DATABASE_URL" in str(refused.value)


def test_no_file_at_all_names_the_file_too(settings: Settings) -> None:
    """A service set up nowhere is told which file it looked for, not only that a field is missing."""
    with pytest.raises(MissingCredentials, match=str(settings.secrets_path / "router.json")):
        read_identity(settings, "router")
