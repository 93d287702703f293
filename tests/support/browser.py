"""How the tests start Chromium: Debian's (/usr/bin/chromium), never a downloaded one (STACK.md), headless."""

__all__ = ["CHROMIUM_ARGS"]

CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]
