"""The AsyncAPI document kept in docs/ is the one the services generate, and it names every message with its fields."""

from pathlib import Path

import yaml

from services.asyncapi import specification
from shared.contract import COMMAND_TYPES, Outcome, SubmitDocument
from shared.events import EVENT_TYPES

KEPT = Path(__file__).resolve().parents[2] / "docs" / "asyncapi.yaml"


def test_the_kept_document_is_not_stale() -> None:
    """docs/asyncapi.yaml equals what the services generate now (run `make asyncapi` after changing a message or a queue)."""
    assert yaml.safe_load(KEPT.read_text()) == yaml.safe_load(specification()), "docs/asyncapi.yaml is stale: run `make asyncapi`"


def test_every_event_command_and_the_external_contract_is_listed_with_its_fields() -> None:
    """Each event, each command, SubmitDocument and Outcome has a payload schema naming all its fields."""
    schemas = yaml.safe_load(KEPT.read_text())["components"]["schemas"]
    for model in [*EVENT_TYPES.values(), *COMMAND_TYPES.values(), SubmitDocument, Outcome]:
        assert model.__name__ in schemas, model.__name__
        assert set(schemas[model.__name__]["properties"]) == set(model.model_fields), model.__name__
