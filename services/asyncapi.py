"""The AsyncAPI document of Paraaf's messaging, generated from the services
themselves: every queue each service consumes, with every message it
accepts there and that message's payload schema (from the pydantic models).

``python -m services.asyncapi`` prints it (``make asyncapi`` writes
docs/asyncapi.yaml, which intake serves at ``/asyncapi``; a test fails when
that file is stale, byte for byte, so the output is sorted where FastStream's
is not). To FastStream's document it adds what an integrator codes against
and FastStream cannot see: the exchange ``esign.intake`` she publishes on.
The services are built, not started: nothing connects to RabbitMQ or
PostgreSQL. ``faststream docs serve services.asyncapi:docs`` shows
FastStream's own rendering.
"""

import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from faststream import FastStream
from faststream.specification import AsyncAPI

from shared.settings import Settings

__all__ = ["built_apps", "docs", "specification"]

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


def built_apps() -> dict[str, FastStream]:
    """The five services' apps, built with documentation-only settings (HTTP docs on) and never started."""
    with tempfile.TemporaryDirectory() as directory:
        common = {**_settings_for(Path(directory)), "http_docs": True}
        apps = {}
        for name, create_app in _builders().items():
            config = __import__(f"services.{name}.config", fromlist=["x"])
            settings_class = next(v for k, v in vars(config).items() if k.endswith("Settings") and isinstance(v, type) and issubclass(v, Settings) and v is not Settings)
            apps[name] = create_app(settings_class(**common))
    return apps


def docs() -> FastStream:
    """An app (never run) whose AsyncAPI document covers the five services' brokers."""
    apps = built_apps().values()
    brokers = [app.broker for app in apps]
    specification = AsyncAPI(
        *brokers,
        title="Paraaf",
        version=VERSION,
        description=(
            "Document-signing workflows for public administrations: what each service consumes and publishes. "
            "Integrators publish SubmitDocument on esign.intake (channel esign.intake:submit.{source}) and read Outcome "
            "from esign.outcomes (their queue outcomes.<source>); see docs/integrating.md. Operators find every domain "
            "event on esign.events, as the audit log records it."
        ),
    )
    return FastStream(brokers[0], specification=specification)


def specification() -> str:
    """The document as YAML, the same bytes on every run (so a stale copy is found by comparing bytes)."""
    document = docs().schema.to_specification().to_jsonable()
    return yaml.safe_dump(_sorted_names(_for_integrators(document)), sort_keys=False, allow_unicode=True, width=100)


_SOURCE = {"description": "the integrating system's name, as registered with `paraaf sources add`"}
_INTAKE_CHANNEL = {
    "address": "submit.{source}",
    "title": "Submissions",
    "description": "An integrating system submits a document: publish SubmitDocument as JSON, persistent, with the AMQP "
    "`user_id` of its own broker user, on exchange `esign.intake` with routing key `submit.<source>`. "
    "Paraaf answers on `esign.outcomes` (the source's queue `outcomes.<source>`).",
    "parameters": {"source": _SOURCE},
    "messages": {"SubmitDocument": {"$ref": "#/components/messages/esign.intake:SubmitDocument"}},
    "bindings": {"amqp": {"is": "routingKey", "bindingVersion": "0.3.0", "exchange": {
        "name": "esign.intake", "type": "topic", "durable": True, "autoDelete": False, "vhost": "/"}}},
}
_INTAKE_OPERATION = {
    "action": "receive",
    "title": "Submit a document",
    "summary": "Intake takes submissions from queue `intake.submissions`, bound to `esign.intake` with `submit.*`.",
    "channel": {"$ref": "#/channels/esign.intake:submit.{source}"},
    "messages": [{"$ref": "#/channels/esign.intake:submit.{source}/messages/SubmitDocument"}],
}
_OUTCOMES = "esign.outcomes:<source>.<status>"


def _for_integrators(document: dict[str, Any]) -> dict[str, Any]:
    """What an integrator codes against, named as she sees it: the exchange `esign.intake` she publishes on
    (FastStream knows only intake's queue), and the outcomes' routing key with its two parameters."""
    document["channels"]["esign.intake:submit.{source}"] = _INTAKE_CHANNEL
    document["operations"]["esign.intake:submit"] = _INTAKE_OPERATION
    document["components"]["messages"]["esign.intake:SubmitDocument"] = {
        "title": "SubmitDocument", "contentType": "application/json", "payload": {"$ref": "#/components/schemas/SubmitDocument"},
    }
    outcomes = document["channels"][_OUTCOMES]
    outcomes["address"] = "{source}.{status}"
    outcomes["parameters"] = {"source": _SOURCE, "status": {
        "enum": ["accepted", "rejected", "completed", "declined", "withdrawn"], "description": "what became of the submission"}}
    return document


def _sorted_names(document: dict[str, Any]) -> dict[str, Any]:
    """FastStream lists channels, operations, messages and schemas in an order that changes from run to run
    (it collects them in sets); sort those maps by name, leave every other map in its own order."""
    for path in (("channels",), ("operations",), ("components", "messages"), ("components", "schemas")):
        *parents, last = path
        holder = document
        for key in parents:
            holder = holder.get(key, {})
        if last in holder:
            holder[last] = dict(sorted(holder[last].items()))
    return document


if __name__ == "__main__":
    print(specification(), end="")
