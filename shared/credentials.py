"""Each service's own credentials: its broker user, its database role,
(for the notifier) its key to the signer's link API and (for the audit) its
key that seals the chain's checkpoints.

``paraaf setup`` writes them, one JSON file per service in the secrets
directory (``PARAAF_SECRETS_DIR``, default ``DATA_DIR/secrets``, mode 0600),
and a service reads only its own. Where each service runs in its own
container, give it its own instead through the environment:
``PARAAF_<SERVICE>_AMQP_URL``, ``PARAAF_<SERVICE>_DATABASE_URL`` and
``PARAAF_NOTIFIER_SIGNER_KEY``, ``PARAAF_AUDIT_SEAL_KEY`` win over the file (and ``paraaf setup`` sets
the users' and roles' passwords from them when they are given).
"""

import getpass
import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from shared.names import broker_user
from shared.settings import CannotStart, Settings

__all__ = ["FIELDS", "Identity", "MissingCredentials", "read_identity", "shell_operator", "write_identity"]

FIELDS = ("amqp_url", "database_url", "signer_key", "seal_key")


class MissingCredentials(CannotStart):
    """A service has no credentials of its own: ``paraaf setup`` has not run for it."""


@dataclass(frozen=True)
class Identity:
    service: str
    amqp_url: str
    database_url: str = ""
    signer_key: str | None = None

    @property
    def broker_user(self) -> str:
        return unquote(urlsplit(self.amqp_url).username or "")


def _file(settings: Settings, service: str) -> Path:
    return settings.secrets_path / f"{service}.json"


def _override(service: str, field: str) -> str | None:
    return os.environ.get(f"PARAAF_{service.upper()}_{field.upper()}") or None


def stored(settings: Settings, service: str) -> dict[str, str]:
    """What the secrets directory holds for ``service``, with the environment's overrides on top."""
    path = _file(settings, service)
    values = json.loads(path.read_text()) if path.exists() else {}
    for field in FIELDS:
        if (value := _override(service, field)) is not None:
            values[field] = value
    return values


def write_identity(settings: Settings, service: str, **values: str) -> None:
    """Merge ``values`` into the service's file (created 0600 in a 0700 directory)."""
    directory = settings.secrets_path
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = _file(settings, service)
    current = json.loads(path.read_text()) if path.exists() else {}
    current.update(values)
    temporary = path.with_suffix(".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(current, handle, indent=2)
    temporary.replace(path)


def read_identity(settings: Settings, service: str, needs: tuple[str, ...] = ("amqp_url", "database_url")) -> Identity:
    """The service's own credentials; refuses to run as anyone else (``guest`` above all)."""
    values = stored(settings, service)
    missing = [f for f in needs if not values.get(f)]
    if missing:
        raise MissingCredentials(
            f"{service} has no {' or '.join(missing)} of its own in {_file(settings, service)}: run `paraaf setup` (or set "
            + " and ".join(f"PARAAF_{service.upper()}_{f.upper()}" for f in missing)
            + ")"
        )
    identity = Identity(service, values.get("amqp_url", ""), values.get("database_url", ""), values.get("signer_key"))
    expected = broker_user(settings.broker_user_prefix, service)
    if "amqp_url" in needs and identity.broker_user != expected:
        raise MissingCredentials(
            f"{service} must connect to RabbitMQ as `{expected}`, not `{identity.broker_user}`:"
            " every service has its own broker user (run `paraaf broker setup`)"
        )
    return identity


def shell_operator() -> str:
    """Who acts from this shell, as the audit log names an operator's command: ``operator:<user>@<host>``
    (the portal names a signed-in operator ``operator:<her directory id>``)."""
    return f"operator:{getpass.getuser()}@{socket.gethostname()}"
