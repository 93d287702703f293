"""The OpenAPI documents kept in docs/openapi/ are the ones the services' HTTP apps describe now, one per service."""

import json

from services.openapi import KEPT, documents


def test_every_kept_openapi_document_is_the_one_generated_now() -> None:
    """docs/openapi/<service>.json has the very bytes FastAPI generates for each service (run `make openapi` after changing a route)."""
    generated = documents()
    assert set(generated) == {"intake", "router", "signer", "notifier", "audit"}
    assert sorted(p.stem for p in KEPT.glob("*.json")) == sorted(generated), "docs/openapi/ holds another set of services: run `make openapi`"
    for name, text in generated.items():
        assert (KEPT / f"{name}.json").read_text() == text, f"docs/openapi/{name}.json is stale: run `make openapi`"


def test_the_documents_name_the_routes_integrators_use() -> None:
    """Intake's document lists /asyncapi; the router's lists the withdraw endpoint, each with a description."""
    intake = json.loads((KEPT / "intake.json").read_text())
    router = json.loads((KEPT / "router.json").read_text())
    assert intake["openapi"].startswith("3.") and "/asyncapi" in intake["paths"]
    withdraw = next(path for path in router["paths"] if path.endswith("/withdraw"))
    assert router["paths"][withdraw]["post"]["description"]
