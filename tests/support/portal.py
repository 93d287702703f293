"""A person using the portal over HTTP, as a browser would: signing in with the
one-time link mailed to her directory address, then reading and posting forms
with the CSRF token each page carries."""

import re

import httpx

from tests.support.smtp import SmtpServer
from tests.support.waiting import eventually

__all__ = ["ask_for_sign_in_link", "csrf_on", "sign_in_by_mail", "sign_in_link_in"]

_CSRF = re.compile(r'name="csrf" value="([0-9a-f]+)"')
_SIGN_IN_LINK = re.compile(r"https?://[^\s<>\"]+/p/sign-in/[A-Za-z0-9_-]+")


def csrf_on(page: httpx.Response) -> str:
    match = _CSRF.search(page.text)
    assert match is not None, f"no form on the page ({page.status_code}):\n{page.text[:2000]}"
    return match.group(1)


async def ask_for_sign_in_link(client: httpx.AsyncClient, email: str) -> httpx.Response:
    """The sign-in page, then its form with her address."""
    page = await client.get("/p/sign-in")
    return await client.post("/p/sign-in", data={"email": email, "csrf": csrf_on(page)})


def sign_in_link_in(text: str) -> str:
    match = _SIGN_IN_LINK.search(text)
    assert match is not None, f"no sign-in link in:\n{text}"
    return match.group(0)


async def _sign_in_link_after(smtp: SmtpServer, email: str, already: int) -> str | None:
    """The sign-in link in the first mail after the first ``already`` to ``email`` that holds one: a reminder for a
    request of hers may arrive between asking and the sign-in mail."""
    return next((found.group(0) for mail in smtp.received_by(email)[already:] if (found := _SIGN_IN_LINK.search(mail.text))), None)


async def sign_in_by_mail(base_url: str, smtp: SmtpServer, email: str) -> httpx.AsyncClient:
    """A client signed in as the person with this address: asks for the link, opens it from the mail, presses Sign in."""
    client = httpx.AsyncClient(base_url=base_url)
    already = len(smtp.received_by(email))
    answer = await ask_for_sign_in_link(client, email)
    assert answer.status_code == 303, answer.text
    link = await eventually(lambda: _sign_in_link_after(smtp, email, already), f"a sign-in link mailed to {email}", timeout=30)
    page = await client.get(link)
    used = await client.post(link, data={"csrf": csrf_on(page)})
    assert used.status_code == 303 and used.headers["location"] == "/p/", (used.status_code, used.text[:500])
    return client
