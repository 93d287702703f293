"""The notifier's client of the signer's link API over real HTTP, against a stand-in for the signer that records what
it is asked: the sign-in link's request, a `gone` read as no link, the links of mails sent together asked in one
call, and a signer that is down, restarting or refusing the key read as the sender's kinds of "not now"."""

import asyncio
from collections.abc import AsyncIterator
from uuid import UUID, uuid4

import pytest
from aiohttp import web

from services.notifier.links import LinkGone, LinkUnavailable, SignerLinks, SignerNotAnswering
from tests.support.net import free_port

KEY = "notifier-links-key"


class SignerStandIn:
    """``POST /internal/links/batch``: a link for each known sign-in attempt, `gone` for any other."""

    def __init__(self) -> None:
        self.attempts: set[str] = set()
        self.asked: list[tuple[str | None, dict]] = []  # (Authorization header, JSON body)
        self.calls = 0
        self.status = 200  # answer this instead, with no links

    async def links(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.calls += 1
        if self.status != 200:
            return web.json_response({"detail": "not now"}, status=self.status)
        self.asked.extend((request.headers.get("Authorization"), asked) for asked in body["links"])
        return web.json_response({"links": [self._link(asked) for asked in body["links"]]})

    def _link(self, asked: dict) -> dict:
        if asked.get("request_id") not in self.attempts:
            return {"gone": "sign-in attempt unknown, used or expired"}
        return {"url": f"http://signer.test/a/{asked['mail_id']}", "expires_at": "2026-03-02T09:15:00+00:00"}


@pytest.fixture
async def signer() -> AsyncIterator[tuple[SignerStandIn, str]]:
    stand_in, port = SignerStandIn(), free_port()
    app = web.Application()
    app.router.add_post("/internal/links/batch", stand_in.links)
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
    links = SignerLinks(url, KEY)
    try:
        link = await links.sign_in_link(attempt_id, mail_id)
    finally:
        await links.aclose()
    assert stand_in.asked == [(f"Bearer {KEY}", {"kind": "sign_in", "request_id": str(attempt_id), "mail_id": str(mail_id)})]
    assert link.url == f"http://signer.test/a/{mail_id}" and link.expires_at.isoformat() == "2026-03-02T09:15:00+00:00"


async def test_a_gone_answer_for_a_sign_in_attempt_means_no_link(signer: tuple[SignerStandIn, str]) -> None:
    """An attempt the signer no longer knows (used, expired) is answered `gone`, which the notifier reads as LinkGone."""
    stand_in, url = signer
    links = SignerLinks(url, KEY)
    with pytest.raises(LinkGone, match="unknown, used or expired"):
        await links.sign_in_link(uuid4(), UUID(int=1))
    await links.aclose()


@pytest.mark.parametrize(("status", "kind"), [(503, SignerNotAnswering), (502, SignerNotAnswering), (401, LinkUnavailable)])
async def test_a_signer_restarting_or_refusing_the_key_gives_no_link_now(
    signer: tuple[SignerStandIn, str], status: int, kind: type[Exception]
) -> None:
    """A 502/503 (restarting, its database away) is "ask again in seconds"; a 401 is "not now" for the SMTP-style retry,
    with the signer's answer in the error."""
    stand_in, url = signer
    stand_in.status = status
    links = SignerLinks(url, KEY)
    with pytest.raises(LinkUnavailable, match=str(status)) as raised:
        await links.sign_in_link(uuid4(), uuid4())
    await links.aclose()
    assert type(raised.value) is kind
    if status == 401:
        assert "not now" in str(raised.value)


async def test_a_signer_that_is_down_is_asked_again_in_seconds() -> None:
    """Nothing listening on the signer's port: the mail waits seconds (SignerNotAnswering), not an SMTP retry."""
    links = SignerLinks(f"http://127.0.0.1:{free_port()}/", KEY)
    with pytest.raises(SignerNotAnswering, match="does not answer"):
        await links.sign_in_link(uuid4(), uuid4())
    await links.aclose()


async def test_the_links_of_mails_sent_together_are_asked_in_one_call(signer: tuple[SignerStandIn, str]) -> None:
    """Eight mails asking at once: one call, each mail its own link or its own LinkGone."""
    stand_in, url = signer
    attempts = [uuid4() for _ in range(8)]
    stand_in.attempts.update(str(a) for a in attempts[:6])
    links = SignerLinks(url, KEY)
    try:
        made = await asyncio.gather(*(links.sign_in_link(a, a) for a in attempts), return_exceptions=True)
    finally:
        await links.aclose()
    assert stand_in.calls == 1
    assert [m.url for m in made[:6]] == [f"http://signer.test/a/{a}" for a in attempts[:6]]  # type: ignore[union-attr]
    assert all(isinstance(m, LinkGone) for m in made[6:])
