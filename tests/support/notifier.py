"""The notifier inside the test process, with a clock the test moves: days
pass when the test says so, while retries and timeouts still run in real
time. Its links come from the real signer when one runs, or from
:class:`FakeLinks`, a stand-in for the signer's link API that records what
it was asked.
"""

import itertools
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4
from zoneinfo import ZoneInfo

from faststream import TestApp

from services.notifier.links import LinkGone, MintedLink
from shared.contract import SendSigningLink
from shared.events import PersonRef
from tests.support.session import SESSION_PREFIX
from tests.support.smtp import SmtpServer

__all__ = ["ANN", "BRUSSELS", "ELEN", "MONDAY", "FakeClock", "FakeLinks", "link_command", "notifier_settings", "running_notifier"]

BRUSSELS = ZoneInfo("Europe/Brussels")
MONDAY = datetime(2026, 3, 2, 10, 0, tzinfo=BRUSSELS)
ANN = PersonRef(id="ann.aerts", name="Ann Aerts", email="ann.aerts@example.org", language="nl")
ELEN = PersonRef(id="elen.elaut", name="Elen Elaut", email="elen.elaut@example.org", language="en")



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


class FakeLinks:
    """The signer's link API as the notifier sees it: a new link per call; none for a request, or a sign-in attempt,
    marked closed."""

    def __init__(self, base_url: str = "http://signer.test") -> None:
        self._base = base_url
        self._numbers = itertools.count(1)
        self.closed: set[UUID] = set()
        self.asked: list[tuple[str, UUID]] = []  # (what, mail id)

    def _link(self, kind: str) -> MintedLink:
        return MintedLink(f"{self._base}/{kind}/token{next(self._numbers):04d}xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", datetime.now(UTC) + timedelta(days=21))

    async def signing_link(self, request_id: UUID, mail_id: UUID) -> MintedLink:
        self.asked.append((f"signing:{request_id}", mail_id))
        if request_id in self.closed:
            raise LinkGone(f"request {request_id} is not open")
        return self._link("s")

    async def download_link(self, document_id: UUID, person_id: str, mail_id: UUID) -> MintedLink:
        self.asked.append((f"download:{document_id}:{person_id}", mail_id))
        return self._link("d")

    async def sign_in_link(self, attempt_id: UUID, mail_id: UUID) -> MintedLink:
        self.asked.append((f"sign_in:{attempt_id}", mail_id))
        if attempt_id in self.closed:
            raise LinkGone(f"sign-in attempt {attempt_id} is unknown, used or expired")
        return self._link("a")


def notifier_settings(database_url: str, amqp_url: str, smtp: SmtpServer, port: int, *, secrets_dir: str, **changes: Any) -> Any:
    from services.notifier.config import NotifierSettings

    return NotifierSettings(
        database_url=database_url,
        amqp_url=amqp_url,
        secrets_dir=secrets_dir,
        broker_user_prefix=SESSION_PREFIX,
        db_role_prefix=SESSION_PREFIX,
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
async def running_notifier(settings: Any, clock: Callable[[], datetime], links: Any = None) -> AsyncIterator[None]:
    from services.notifier.main import create_app

    async with TestApp(create_app(settings, clock=clock, links=links)):
        yield

def link_command(clock: FakeClock, recipient: PersonRef = ANN, **changes) -> SendSigningLink:
    request_id = changes.pop("request_id", uuid4())
    return SendSigningLink(
        correlation_id=changes.pop("correlation_id", uuid4()),
        request_id=request_id,
        recipient=recipient,
        title=changes.pop("title", "Collegebesluit 42"),
        submitted_by=ELEN,
        step=1,
        step_count=1,
        action="sign",
        expires_at=clock() + timedelta(days=21),
        **changes,
    )
