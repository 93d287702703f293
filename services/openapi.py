"""The OpenAPI documents of the services' HTTP APIs, generated from the apps
themselves (FastAPI), one per service: ``python -m services.openapi``
(``make openapi``) writes docs/openapi/<service>.json; a test fails when one
is stale. The services are built, not started, as for services.asyncapi.

The running services serve these pages (``/docs``, ``/openapi.json``) only
with ``PARAAF_HTTP_DOCS=true``; the kept copies are what integrators read.
"""

import json
import sys
from pathlib import Path

from services.asyncapi import VERSION, built_apps
from shared.service import http_api

__all__ = ["KEPT", "documents"]

KEPT = Path(__file__).resolve().parents[1] / "docs" / "openapi"


def documents() -> dict[str, str]:
    """Each service's OpenAPI document as indented JSON, keys in the order FastAPI gives (stable from run to run)."""
    found = {}
    for name, app in built_apps().items():
        if (api := http_api(app)) is not None:
            api.version = VERSION
            found[name] = json.dumps(api.openapi(), indent=2, ensure_ascii=False) + "\n"
    return found


def main(directory: Path = KEPT) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in documents().items():
        (directory / f"{name}.json").write_text(text)
        print(f"wrote {directory / f'{name}.json'}", file=sys.stderr)


if __name__ == "__main__":
    main()
