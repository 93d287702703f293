"""Settings read from the environment (prefix ``PARAAF_``).

Every service extends :class:`Settings` with its own fields; README.md lists
them all (a test keeps that table honest).
"""

from datetime import datetime
from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings"]


class Settings(BaseSettings):
    """What every service needs: where the broker, the database and its data live."""

    model_config = SettingsConfigDict(env_prefix="PARAAF_", extra="ignore")

    amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    database_url: str = "postgresql://postgres@127.0.0.1:5432/paraaf"
    public_url: str = "http://127.0.0.1:8083"
    data_dir: Path = Path("var")
    org: str = "default"
    timezone: str = "Europe/Brussels"
    http_host: str = "127.0.0.1"
    log_level: str = "INFO"
    log_format: str = "json"
    prefetch: int = 16
    delivery_limit: int = 5
    db_pool_size: int = 5
    clock_start: datetime | None = None  # tests and demos only: run the clock from this instant
