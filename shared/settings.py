"""Settings read from the environment (prefix ``PARAAF_``).

Every service extends :class:`Settings` with its own fields; README.md lists
them all (a test keeps that table honest).

``amqp_url`` and ``database_url`` name the broker (with its vhost) and the
database, with an administrator's credentials: only the setup commands
(``paraaf db setup``, ``paraaf broker setup``, ``paraaf sources``,
``paraaf keys``) use those credentials. Each service connects as its own
user (shared/credentials.py).
"""

from datetime import datetime
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["CannotStart", "Settings"]


class CannotStart(RuntimeError):
    """A service cannot start as configured; the message says what to do."""


class Settings(BaseSettings):
    """What every service needs: where the broker, the database and its data live."""

    model_config = SettingsConfigDict(env_prefix="PARAAF_", extra="ignore")

    amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    database_url: str = "postgresql://postgres@127.0.0.1:5432/paraaf"
    public_url: str = "http://127.0.0.1:8083"
    data_dir: Path = Path("var")
    secrets_dir: Path | None = None  # where `paraaf setup` keeps the services' credentials; default DATA_DIR/secrets
    broker_user_prefix: str = "paraaf"  # broker users are <prefix>.<service> and <prefix>.source.<source>
    db_role_prefix: str = "paraaf"  # database roles are <prefix>_<service>
    org: str = "default"
    timezone: str = "Europe/Brussels"
    http_host: str = "127.0.0.1"
    # Several processes of one service share its port (SO_REUSEPORT; the kernel spreads connections over them):
    # `paraaf run all --scale` sets it for a scaled service. Off, a second process on the port fails to start.
    http_reuse_port: bool = False
    replica: int | None = None  # which process of its service this is (`paraaf run all --scale`): in every log line
    http_docs: bool = False  # serve /docs and /openapi.json
    log_level: str = "INFO"
    log_format: str = "json"
    prefetch: int = 16
    delivery_limit: int = 5
    db_pool_size: int = 5
    digest_threshold: int = Field(default=10, ge=0)  # more requests than this waiting for a 'digest' person: one mail a day
    link_ttl_hours: int = 24 * 21  # how long a signing link works (signer); the latest due date intake accepts
    stuck_after: int = 5  # working days (Mon-Fri, TIMEZONE) a document may wait on one step before it counts as stuck
    clock_start: datetime | None = None  # tests and demos only: run the clock from this instant
    clock_file: Path | None = None  # tests and demos only: the clock follows the instant written in this file

    @property
    def secrets_path(self) -> Path:
        return self.secrets_dir or self.data_dir / "secrets"

    @property
    def public_https(self) -> bool:
        return self.public_url.lower().startswith("https://")
