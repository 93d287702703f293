"""Where the notifier gets the link a mail carries: from the signer, at the
moment it sends the mail, over the signer's internal API with the notifier's
own key (scope ``links``). So no link sits in a queue, a table or a
dead-letter queue; a mail that waits out an SMTP outage gets a link that is
good from when it leaves; and a request closed meanwhile gets no mail.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol
from uuid import UUID

import httpx

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
    """The signer's ``POST /internal/links``, over one client kept for the process: a new client per link cost
    more than the rest of sending the mail (it builds a TLS context, ~30 ms of CPU, even for plain HTTP)."""

    def __init__(self, base_url: str, key: str | None, *, timeout: float = 15.0) -> None:
        self._url = base_url.rstrip("/") + "/internal/links"
        self._headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._timeout = timeout
        self._client: httpx.AsyncClient | None = None

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _ask(self, body: dict) -> MintedLink:
        if self._client is None:  # made in the running loop, on first use
            self._client = httpx.AsyncClient(timeout=self._timeout)
        try:
            response = await self._client.post(self._url, json=body, headers=self._headers)
        except httpx.HTTPError as exc:
            raise SignerNotAnswering(f"the signer's link API does not answer: {exc!r}") from None
        if response.status_code == 410:
            raise LinkGone(response.json().get("detail", "no link"))
        if response.status_code in (502, 503, 504):  # restarting, or its database just went away: seconds, not minutes
            raise SignerNotAnswering(f"the signer's link API answered {response.status_code}: try again shortly")
        if response.status_code != 201:
            raise LinkUnavailable(f"the signer's link API answered {response.status_code}: {response.text[:200]}")
        answer = response.json()
        return MintedLink(answer["url"], datetime.fromisoformat(answer["expires_at"]))

    async def signing_link(self, request_id: UUID, mail_id: UUID) -> MintedLink:
        return await self._ask({"kind": "signing", "request_id": str(request_id), "mail_id": str(mail_id)})

    async def download_link(self, document_id: UUID, person_id: str, mail_id: UUID) -> MintedLink:
        return await self._ask(
            {"kind": "download", "document_id": str(document_id), "person_id": person_id, "mail_id": str(mail_id)}
        )

    async def sign_in_link(self, attempt_id: UUID, mail_id: UUID) -> MintedLink:
        return await self._ask({"kind": "sign_in", "request_id": str(attempt_id), "mail_id": str(mail_id)})
