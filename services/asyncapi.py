"""The AsyncAPI document of Paraaf's messaging, generated from the services
themselves: every queue each service consumes, with every message it
accepts there and that message's payload schema (from the pydantic models).

``python -m services.asyncapi`` prints it (``make asyncapi`` writes
docs/asyncapi.yaml; a test fails when that file is stale). The services are
built, not started: nothing connects to RabbitMQ or PostgreSQL.
``faststream docs gen services.asyncapi:docs`` gives the same document.
"""

import json
import tempfile
from collections.abc import Callable
from pathlib import Path

from faststream import FastStream
from faststream.specification import AsyncAPI

from shared.settings import Settings

__all__ = ["docs", "specification"]

SERVICES = ("intake", "router", "signer", "notifier", "audit")
VERSION = "1.0.0"


def _builders() -> dict[str, Callable[..., object]]:
    from services.audit.main import create_app as audit
    from services.intake.main import create_app as intake
    from services.notifier.main import create_app as notifier
    from services.router.main import create_app as router
    from services.signer.main import create_app as signer

    return {"intake": intake, "router": router, "signer": signer, "notifier": notifier, "audit": audit}


def _settings_for(secrets: Path) -> dict[str, object]:
    """Credentials of no use to anyone: the apps need some to be built."""
    for service in SERVICES:
        identity = {"amqp_url": f"amqp://paraaf.{service}:docs@localhost/", "database_url": "postgresql://docs@localhost/docs"}
        if service == "audit":
            from services.audit.seal import new_sealing_key

            identity["seal_key"] = new_sealing_key()
        (secrets / f"{service}.json").write_text(json.dumps(identity))
    return {"secrets_dir": secrets, "broker_user_prefix": "paraaf", "key_secret": "documentation-only-key-secret", "log_level": "ERROR"}


def docs() -> FastStream:
    """An app (never run) whose AsyncAPI document covers the five services' brokers."""
    with tempfile.TemporaryDirectory() as directory:
        common = _settings_for(Path(directory))
        apps = []
        for name, create_app in _builders().items():
            config = __import__(f"services.{name}.config", fromlist=["x"])
            settings_class = next(v for k, v in vars(config).items() if k.endswith("Settings") and isinstance(v, type) and issubclass(v, Settings) and v is not Settings)
            apps.append(create_app(settings_class(**common)))
    brokers = [app.broker for app in apps]
    specification = AsyncAPI(
        *brokers,
        title="Paraaf",
        version=VERSION,
        description="Document-signing workflows for public administrations: what each service consumes and publishes.",
    )
    return FastStream(brokers[0], specification=specification)


def specification() -> str:
    return docs().schema.to_specification().to_yaml()


if __name__ == "__main__":
    print(specification(), end="")
