"""How the tests start Chromium: Debian's (/usr/bin/chromium), never a downloaded one (STACK.md), headless."""

from pathlib import Path
from typing import TYPE_CHECKING

import asyncpg
from playwright.async_api import expect

from tests.support.waiting import eventually

if TYPE_CHECKING:
    from playwright.async_api import Page

__all__ = ["CHROMIUM_ARGS", "screenshots", "seconds_to_live_row", "watch_live_rows"]

CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]


async def screenshots(page: "Page", folder: Path, name: str) -> None:
    """The page whole, at desktop and at phone width, kept as <folder>/<name>-desktop.png and -phone.png."""
    for width, height, label in ((1280, 900, "desktop"), (390, 844, "phone")):
        await page.set_viewport_size({"width": width, "height": height})
        await page.screenshot(path=str(folder / f"{name}-{label}.png"), full_page=True)
    await page.set_viewport_size({"width": 1280, "height": 900})


# When each row arrived, by the browser's clock (a test probe; the page itself runs only its own script).
_SEEN_AT = """() => {
  window.seenAt = {};
  new MutationObserver(changes => changes.forEach(change => change.addedNodes.forEach(node => {
    if (node.dataset && node.dataset.seq && !(node.dataset.seq in window.seenAt)) window.seenAt[node.dataset.seq] = Date.now();
  }))).observe(document.querySelector("#live tbody"), {childList: true});
}"""


async def watch_live_rows(page: "Page") -> None:
    """Start noting when each new row of the open live view (/p/ops/live) appears."""
    await page.evaluate(_SEEN_AT)


async def seconds_to_live_row(page: "Page", database_url: str, external_ref: str) -> float:
    """How long after its audit-log entry was appended the document.submitted of ``external_ref`` appeared on the
    watched live view (the browser's clock against the database's, one machine); fails if not within 2 s."""
    async def entry() -> asyncpg.Record | None:
        conn = await asyncpg.connect(database_url)
        try:  # recorded_at is the appending transaction's start: a little before its commit
            return await conn.fetchrow(
                "SELECT seq, extract(epoch FROM recorded_at)::float8 AS at FROM audit.log"
                " WHERE routing_key = 'document.submitted' AND payload LIKE '%' || $1 || '%'", external_ref,
            )
        finally:
            await conn.close()

    logged = await eventually(entry, f"{external_ref} in the audit log", timeout=60)
    row = page.locator(f'#live tr[data-seq="{logged["seq"]}"]')
    await expect(row).to_be_visible(timeout=2_000)
    await expect(row).to_contain_text("document.submitted")
    return await page.evaluate("seq => window.seenAt[seq]", str(logged["seq"])) / 1000 - logged["at"]
