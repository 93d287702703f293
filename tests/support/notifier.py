"""The notifier inside the test process, with a clock the test moves: days
pass when the test says so, while retries and timeouts still run in real
time.
"""

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from faststream import TestApp

from tests.support.smtp import SmtpServer

__all__ = ["FakeClock", "notifier_settings", "running_notifier"]


class FakeClock:
    """Real time shifted by an offset the test controls."""

    def __init__(self, starts_at: datetime) -> None:
        self._offset = starts_at - datetime.now(UTC)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self._offset

    def advance(self, delta: timedelta) -> None:
        self._offset += delta

    def move_to(self, moment: datetime) -> None:
        self._offset = moment - datetime.now(UTC)


def notifier_settings(database_url: str, amqp_url: str, smtp: SmtpServer, port: int, **changes: Any) -> Any:
    from services.notifier.config import NotifierSettings

    return NotifierSettings(
        database_url=database_url,
        amqp_url=amqp_url,
        smtp_host=smtp.host,
        smtp_port=smtp.port,
        notifier_port=port,
        scheduler_seconds=0.1,
        mail_retry_seconds=0.2,
        mail_retry_max_seconds=1.0,
        moved_notice_window_seconds=1.0,
        **changes,
    )


@asynccontextmanager
async def running_notifier(settings: Any, clock: Callable[[], datetime]) -> AsyncIterator[None]:
    from services.notifier.main import create_app

    async with TestApp(create_app(settings, clock=clock)):
        yield
