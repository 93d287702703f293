"""``paraaf run all``: start the five services as their own processes, restart
one that dies (with back-off), and stop them all cleanly on Ctrl-C or SIGTERM.

Each child gets only what is its own: the administrator's credentials in
PARAAF_AMQP_URL and PARAAF_DATABASE_URL are removed, PARAAF_KEY_SECRET and
the PKCS#11 token's PIN go to the signer alone, and another service's PARAAF_<SERVICE>_* credentials
to nobody.
"""

import asyncio
import os
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from urllib.parse import urlsplit, urlunsplit

import structlog

from shared.credentials import FIELDS

__all__ = ["SERVICES", "child_environment", "supervise"]

SERVICES = ("intake", "router", "signer", "notifier", "audit")
_ADMIN_URLS = ("PARAAF_AMQP_URL", "PARAAF_DATABASE_URL")
_SIGNER_ONLY = ("PARAAF_KEY_SECRET", "PARAAF_PKCS11_PIN")


def _without_credentials(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    return urlunsplit(parts._replace(netloc=host + (f":{parts.port}" if parts.port else "")))


def child_environment(service: str, environment: Mapping[str, str]) -> dict[str, str]:
    """What the process of ``service`` may see of the supervisor's environment."""
    others = {f"PARAAF_{s.upper()}_{field.upper()}" for s in SERVICES if s != service for field in FIELDS}
    if service != "signer":
        others.update(_SIGNER_ONLY)
    child = {name: value for name, value in environment.items() if name not in others}
    for name in _ADMIN_URLS:
        if name in child:
            child[name] = _without_credentials(child[name])
    return child


async def _run_one(name: str, stopping: asyncio.Event) -> None:
    log = structlog.get_logger().bind(child=name)
    failures = 0
    while not stopping.is_set():
        started = time.monotonic()
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", f"services.{name}", env=child_environment(name, os.environ)
        )
        log.info("service started", pid=process.pid)
        waiter = asyncio.create_task(process.wait())
        stopper = asyncio.create_task(stopping.wait())
        await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if stopping.is_set():
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(waiter, timeout=20)
                except TimeoutError:
                    process.kill()
                    await waiter
            log.info("service stopped", returncode=process.returncode)
            return
        stopper.cancel()
        failures = 0 if time.monotonic() - started > 60 else failures + 1
        delay = min(2**failures, 30)
        log.error("service exited; restarting", returncode=process.returncode, restart_in_seconds=delay)
        try:
            await asyncio.wait_for(stopping.wait(), timeout=delay)
        except TimeoutError:
            pass


async def supervise(names: Sequence[str], *, mail_catcher: bool) -> None:
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    tasks = [asyncio.create_task(_run_one(name, stopping)) for name in names]
    if mail_catcher:
        from services.notifier.catcher import MailCatcher

        catcher = MailCatcher()
        await catcher.start()
        structlog.get_logger().info(
            "no PARAAF_SMTP_HOST: mails go to the local mail catcher", smtp_port=catcher.smtp_port, web=catcher.web_url
        )
    await asyncio.gather(*tasks)
    if mail_catcher:
        await catcher.stop()
