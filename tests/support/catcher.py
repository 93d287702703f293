"""The mail catcher of `paraaf run all` (services/notifier/catcher.py) as a test city's SMTP server: the city
mails it, ``paraaf demo`` reads it over HTTP as it does on `make run`, and an AutoSigner reads it here."""

import re
from dataclasses import dataclass

from services.notifier.catcher import Caught, MailCatcher
from tests.support.net import free_port

__all__ = ["CatcherMailbox"]

_LINK = re.compile(r"https?://[^\s<>\"]+/s/[A-Za-z0-9_-]+")


@dataclass(frozen=True)
class _Mail:
    caught: Caught

    @property
    def text(self) -> str:
        return self.caught.text

    @property
    def signing_link(self) -> str:
        match = _LINK.search(self.caught.text)
        assert match is not None, f"no signing link in mail {self.caught.subject!r}"
        return match.group(0)


class CatcherMailbox:
    """A MailCatcher on free ports, with ``host``/``port`` for System and ``received`` (oldest first) for AutoSigner."""

    def __init__(self) -> None:
        self.catcher = MailCatcher(smtp_port=free_port(), web_port=free_port())
        self.host, self.port, self.web_url = self.catcher.host, self.catcher.smtp_port, self.catcher.web_url

    @property
    def received(self) -> list[_Mail]:
        return [_Mail(m) for m in reversed(self.catcher.mails.copy())]  # a snapshot: the SMTP thread appends

    async def start(self) -> None:
        await self.catcher.start()

    async def stop(self) -> None:
        await self.catcher.stop()
