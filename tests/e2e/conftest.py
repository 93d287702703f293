"""What the end-to-end tests share: Debian's Chromium, headless, as Playwright drives it."""

from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Browser, async_playwright

from tests.support.browser import CHROMIUM_ARGS


@pytest.fixture
async def chromium() -> AsyncIterator[Browser]:
    """Debian's Chromium (/usr/bin/chromium), headless; closed after the test."""
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        yield browser
        await browser.close()
