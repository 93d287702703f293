"""Where the notifier gets the link a mail carries: from the signer, at the
moment it sends the mail, over the signer's internal API with the notifier's
own key (scope ``links``). So no link sits in a queue, a table or a
dead-letter queue; a mail that waits out an SMTP outage gets a link that is
good from when it leaves; and a request closed meanwhile gets no mail.
"""

import asyncio
import contextlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol
from uuid import UUID

import aiohttp

__all__ = ["LinkGone", "LinkSource", "LinkUnavailable", "MintedLink", "SignerLinks", "SignerNotAnswering"]


@dataclass(frozen=True)
class MintedLink:
    url: str
    expires_at: datetime


class LinkGone(LookupError):
    """The signer will make no link: the request is closed, there is nothing to download, or the sign-in attempt
    is unknown, used or expired."""


class LinkUnavailable(ConnectionError):
    """The signer could not be asked now (down, or refusing the notifier's key): try again later."""


class SignerNotAnswering(LinkUnavailable):
    """The signer does not answer, or answers "try again" (restarting, its database cut): the mail waits seconds,
    not an SMTP retry."""


class LinkSource(Protocol):
    async def signing_link(self, request_id: UUID, mail_id: UUID) -> MintedLink: ...

    async def download_link(self, document_id: UUID, person_id: str, mail_id: UUID) -> MintedLink: ...

    async def sign_in_link(self, attempt_id: UUID, mail_id: UUID) -> MintedLink: ...


class SignerLinks:
    """The signer's ``POST /internal/links/batch``, over one client kept for the process: a new client per link cost
    more than the rest of sending the mail (it builds a TLS context, ~30 ms of CPU, even for plain HTTP). The client is
    aiohttp's (pyHanko's own dependency), not httpx: a call cost ~1.9 ms of CPU with httpx, ~0.4 ms with aiohttp
    (its HTTP parser is in C), more than the rest of a mail's link.

    The links asked for while no call is on its way go in one call; those asked meanwhile, in the next (as a group
    commit: none waits for more to come). One call a mail cost the signer a key check and a transaction of four
    statements each; the mails claimed together ask at the same moment, so they share both. Each link is still
    made as its mail leaves, and a failed call fails the mails it carried, each as it would have failed alone."""

    def __init__(self, base_url: str, key: str | None, *, timeout: float = 15.0, most: int = 100) -> None:
        self._url = base_url.rstrip("/") + "/internal/links/batch"
        self._headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._timeout = timeout
        self._most = most  # links in one call
        self._client: aiohttp.ClientSession | None = None
        self._waiting: list[tuple[dict, asyncio.Future[MintedLink]]] = []
        self._flight: asyncio.Task[None] | None = None

    async def aclose(self) -> None:
        if self._flight is not None:
            self._flight.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flight
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def _ask(self, body: dict) -> MintedLink:
        answer: asyncio.Future[MintedLink] = asyncio.get_running_loop().create_future()
        self._waiting.append((body, answer))
        if self._flight is None or self._flight.done():
            self._flight = asyncio.create_task(self._fly())
        return await answer

    async def _fly(self) -> None:
        """Ask for what waits, in calls of at most ``most`` links, until nothing waits. Stopped, it fails what waits."""
        try:
            while self._waiting:
                asking = [(body, answer) for body, answer in self._waiting[: self._most] if not answer.done()]
                del self._waiting[: self._most]
                if asking:
                    await self._answer(asking)
        except BaseException as exc:
            _fail(self._waiting, exc)
            self._waiting = []
            raise

    async def _answer(self, asking: list[tuple[dict, asyncio.Future[MintedLink]]]) -> None:
        try:
            links = await self._call([body for body, _ in asking])
        except Exception as exc:
            _fail(asking, exc)
            return
        except BaseException as exc:
            _fail(asking, exc)
            raise
        for (_, answer), link in zip(asking, links, strict=True):
            if answer.done():
                continue
            if isinstance(link, LinkGone):
                answer.set_exception(link)
            else:
                answer.set_result(link)

    async def _call(self, bodies: list[dict]) -> list[MintedLink | LinkGone]:
        if self._client is None:  # made in the running loop, on first use
            self._client = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self._timeout))
        try:
            async with self._client.post(self._url, json={"links": bodies}, headers=self._headers) as response:
                status, body = response.status, await response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise SignerNotAnswering(f"the signer's link API does not answer: {exc!r}") from None
        if status in (502, 503, 504):  # restarting, or its database just went away: seconds, not minutes
            raise SignerNotAnswering(f"the signer's link API answered {status}: try again shortly")
        if status != 200:
            raise LinkUnavailable(f"the signer's link API answered {status}: {body[:200].decode(errors='replace')}")
        return [_link(answer) for answer in json.loads(body)["links"]]

    async def signing_link(self, request_id: UUID, mail_id: UUID) -> MintedLink:
        return await self._ask({"kind": "signing", "request_id": str(request_id), "mail_id": str(mail_id)})

    async def download_link(self, document_id: UUID, person_id: str, mail_id: UUID) -> MintedLink:
        return await self._ask(
            {"kind": "download", "document_id": str(document_id), "person_id": person_id, "mail_id": str(mail_id)}
        )

    async def sign_in_link(self, attempt_id: UUID, mail_id: UUID) -> MintedLink:
        return await self._ask({"kind": "sign_in", "request_id": str(attempt_id), "mail_id": str(mail_id)})


def _link(answer: dict) -> MintedLink | LinkGone:
    if "gone" in answer:
        return LinkGone(answer["gone"])
    return MintedLink(answer["url"], datetime.fromisoformat(answer["expires_at"]))


def _fail(asking: list[tuple[dict, asyncio.Future[MintedLink]]], exc: BaseException) -> None:
    for _, answer in asking:
        if not answer.done():
            answer.set_exception(_again(exc))


def _again(exc: BaseException) -> BaseException:
    """The failure of a call, for each mail it carried: a fresh exception of the kind each would have got alone
    (a stop, that is cancelled, means try again shortly)."""
    if isinstance(exc, LinkUnavailable):
        return type(exc)(*exc.args)
    if isinstance(exc, Exception):
        return LinkUnavailable(f"asking the signer for links failed: {exc!r}")
    return SignerNotAnswering("the notifier is stopping: the mail waits")
