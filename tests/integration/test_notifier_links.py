"""The notifier's client of the signer's link API over real HTTP, against a stand-in for the signer that records what
it is asked: the sign-in link's request, and a 410 read as no link."""

from collections.abc import AsyncIterator
from uuid import UUID, uuid4

import pytest
from aiohttp import web

from services.notifier.links import LinkGone, SignerLinks
from tests.support.net import free_port

KEY = "notifier-links-key"


class SignerStandIn:
    """``POST /internal/links``: 201 with a link for a known sign-in attempt, 410 for any other."""

    def __init__(self) -> None:
        self.attempts: set[str] = set()
        self.asked: list[tuple[str | None, dict]] = []  # (Authorization header, JSON body)

    async def links(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.asked.append((request.headers.get("Authorization"), body))
        if body.get("request_id") not in self.attempts:
            return web.json_response({"detail": "sign-in attempt unknown, used or expired"}, status=410)
        return web.json_response({"url": "http://signer.test/a/token", "expires_at": "2026-03-02T09:15:00+00:00"}, status=201)


@pytest.fixture
async def signer() -> AsyncIterator[tuple[SignerStandIn, str]]:
    stand_in, port = SignerStandIn(), free_port()
    app = web.Application()
    app.router.add_post("/internal/links", stand_in.links)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield stand_in, f"http://127.0.0.1:{port}/"
    finally:
        await runner.cleanup()


async def test_a_sign_in_link_is_asked_for_the_attempt_and_the_mail(signer: tuple[SignerStandIn, str]) -> None:
    """The notifier posts kind sign_in, the attempt's id as request_id and the mail's id, with its key; it gets the link."""
    stand_in, url = signer
    attempt_id, mail_id = uuid4(), uuid4()
    stand_in.attempts.add(str(attempt_id))
    link = await SignerLinks(url, KEY).sign_in_link(attempt_id, mail_id)
    assert stand_in.asked == [
        (f"Bearer {KEY}", {"kind": "sign_in", "request_id": str(attempt_id), "mail_id": str(mail_id)})
    ]
    assert link.url == "http://signer.test/a/token" and link.expires_at.isoformat() == "2026-03-02T09:15:00+00:00"


async def test_a_410_for_a_sign_in_attempt_means_no_link(signer: tuple[SignerStandIn, str]) -> None:
    """An attempt the signer no longer knows (used, expired) is answered 410, which the notifier reads as LinkGone."""
    stand_in, url = signer
    with pytest.raises(LinkGone, match="unknown, used or expired"):
        await SignerLinks(url, KEY).sign_in_link(uuid4(), UUID(int=1))
