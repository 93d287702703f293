"""A signer who follows every signing link mailed to anyone, as soon as it arrives, and keeps at it while the signer
service is away: a link counts as handled when the signature went through or the page says it was already used."""

import asyncio
import time
from collections import Counter
from contextlib import suppress

import httpx

from tests.support.smtp import SmtpServer
from tests.support.system import follow_link

__all__ = ["AutoSigner"]

# What the signing page answers when this link's request is decided already (by an earlier try whose answer was
# lost to a crash) or no longer open: the link is done with, not to be tried again.
_DONE_WITH = {410}


class AutoSigner:
    """Watches ``smtp`` and signs by every signing link mailed from now on, at most ``parallel`` at a time."""

    def __init__(self, smtp: SmtpServer, *, parallel: int = 4, retry_seconds: float = 0.5) -> None:
        self._smtp = smtp
        self._slots = asyncio.Semaphore(parallel)
        self._retry = retry_seconds
        self._seen = 0
        self._links: dict[str, asyncio.Task[None]] = {}
        self.answers: Counter[str] = Counter()  # how each try ended: "signed", "410", "unreachable", "503", ...
        self.signed_at: dict[str, float] = {}

    async def __aenter__(self) -> "AutoSigner":
        self._seen = len(self._smtp.received)  # links mailed before this signer sat down are someone else's business
        self._watcher = asyncio.create_task(self._watch())
        return self

    async def __aexit__(self, *exc: object) -> None:
        for task in (self._watcher, *self._links.values()):
            task.cancel()
        for task in (self._watcher, *self._links.values()):
            with suppress(asyncio.CancelledError):
                await task

    @property
    def pending(self) -> int:
        return sum(not task.done() for task in self._links.values())

    async def _watch(self) -> None:
        while True:
            for mail in self._smtp.received[self._seen :]:
                self._seen += 1
                if "/s/" in mail.text and (link := mail.signing_link) not in self._links:
                    self._links[link] = asyncio.create_task(self._sign(link))
            await asyncio.sleep(0.1)

    async def _sign(self, link: str) -> None:
        while not await self._try(link):
            await asyncio.sleep(self._retry)

    async def _try(self, link: str) -> bool:
        """One go at signing by ``link``; whether the link is done with."""
        async with self._slots, httpx.AsyncClient(timeout=30) as client:
            try:
                answer = await follow_link(client, link)
            except httpx.TransportError:
                self.answers["unreachable"] += 1
                return False
        if answer.status_code == 200:
            self.answers["signed"] += 1
            self.signed_at[link] = time.monotonic()
            return True
        self.answers[str(answer.status_code)] += 1
        return answer.status_code in _DONE_WITH
