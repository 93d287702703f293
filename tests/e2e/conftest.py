"""What the end-to-end tests share: Debian's Chromium, headless, as Playwright drives it; a real RFC 3161
time-stamping service for a module's city."""

from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Browser, async_playwright

from tests.support.browser import CHROMIUM_ARGS
from tests.support.tsa import TimestampAuthority


@pytest.fixture
async def chromium() -> AsyncIterator[Browser]:
    """Debian's Chromium (/usr/bin/chromium), headless; closed after the test."""
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        yield browser
        await browser.close()


@pytest.fixture(scope="module")
async def tsa() -> AsyncIterator[TimestampAuthority]:
    """A time-stamping service (tests/support/tsa.py) for the module's city: PARAAF_TSA_URL=tsa.url."""
    authority = TimestampAuthority()
    await authority.start()
    yield authority
    await authority.stop()
