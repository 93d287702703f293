"""The AsyncAPI document kept in docs/ is the one the services generate, byte for byte, AsyncAPI's own parser
finds it valid, and it names every message with its fields."""

import subprocess
from pathlib import Path

import yaml

from services.asyncapi import specification
from shared.contract import COMMAND_TYPES, Outcome, SubmitDocument
from shared.events import EVENT_TYPES

ROOT = Path(__file__).resolve().parents[2]
KEPT = ROOT / "docs" / "asyncapi.yaml"
VALIDATOR = ROOT / "deploy" / "asyncapi"


def _validate(path: Path) -> subprocess.CompletedProcess[str]:
    assert (VALIDATOR / "node_modules" / "@asyncapi" / "parser").is_dir(), "AsyncAPI's parser is not installed: run `make install`"
    return subprocess.run(["node", str(VALIDATOR / "validate.mjs"), str(path)], capture_output=True, text=True, timeout=120)


def test_the_kept_document_is_not_stale() -> None:
    """docs/asyncapi.yaml has the very bytes the services generate now (run `make asyncapi` after changing a message or a queue)."""
    assert KEPT.read_text() == specification(), "docs/asyncapi.yaml is stale: run `make asyncapi`"


def test_asyncapis_own_parser_finds_the_kept_document_valid() -> None:
    """@asyncapi/parser validates docs/asyncapi.yaml against the AsyncAPI 3.0 schema and its reference rules without an error."""
    result = _validate(KEPT)
    assert result.returncode == 0, result.stderr


def test_the_parser_refuses_a_document_with_a_dangling_reference(tmp_path: Path) -> None:
    """The validation can fail: the kept document with one operation pointing at a message that does not exist is refused."""
    broken = tmp_path / "asyncapi.yaml"
    broken.write_text(KEPT.read_text().replace("/messages/SubmitDocument'", "/messages/NoSuchMessage'", 1))
    result = _validate(broken)
    assert result.returncode == 1 and "NoSuchMessage" in result.stderr, result.stderr


def test_integrators_find_the_submission_exchange_and_the_outcomes() -> None:
    """The document names what an integrator uses: submit.{source} on esign.intake and {source}.{status} on esign.outcomes."""
    channels = yaml.safe_load(KEPT.read_text())["channels"]
    intake = channels["esign.intake:submit.{source}"]
    assert intake["bindings"]["amqp"]["exchange"]["name"] == "esign.intake"
    outcomes = next(c for c in channels.values() if c["bindings"]["amqp"].get("exchange", {}).get("name") == "esign.outcomes")
    assert outcomes["address"] == "{source}.{status}" and set(outcomes["parameters"]) == {"source", "status"}


def test_every_event_command_and_the_external_contract_is_listed_with_its_fields() -> None:
    """Each event, each command, SubmitDocument and Outcome has a payload schema naming all its fields."""
    schemas = yaml.safe_load(KEPT.read_text())["components"]["schemas"]
    for model in [*EVENT_TYPES.values(), *COMMAND_TYPES.values(), SubmitDocument, Outcome]:
        assert model.__name__ in schemas, model.__name__
        assert set(schemas[model.__name__]["properties"]) == set(model.model_fields), model.__name__
