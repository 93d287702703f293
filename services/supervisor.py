"""``paraaf run all``: start the five services as their own processes, restart
one that dies (with back-off), and stop them all cleanly on Ctrl-C or SIGTERM.

Each child gets only what is its own: the administrator's credentials in
PARAAF_AMQP_URL and PARAAF_DATABASE_URL are removed, PARAAF_KEY_SECRET and
the PKCS#11 token's PIN go to the signer alone, and another service's PARAAF_<SERVICE>_* credentials
to nobody.

With ``scale`` (``paraaf run all --scale signer=3,router=2``) a service runs as
several processes that compete for its queues' messages; a scaled service's
processes share its HTTP port (SO_REUSEPORT, see shared/service.py), so the
signer's public pages stay at PARAAF_PUBLIC_URL. Each replica is restarted on
its own. What only one process may do at a time (schedulers, sealing, relays)
the services coordinate in PostgreSQL, not here.

With a log file the services' output goes there, and once every service answers
on /health the terminal gets three lines: what to open and what to type next.
"""

import asyncio
import os
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from typing import IO
from urllib.parse import urlsplit, urlunsplit

import httpx
import structlog

from shared.credentials import FIELDS

__all__ = ["SERVICES", "child_environment", "parse_scale", "replica_environment", "supervise"]

SERVICES = ("intake", "router", "signer", "notifier", "audit")
_ADMIN_URLS = ("PARAAF_AMQP_URL", "PARAAF_DATABASE_URL")
_SIGNER_ONLY = ("PARAAF_KEY_SECRET", "PARAAF_PKCS11_PIN")
_PORTS = {"intake": 8081, "router": 8082, "signer": 8083, "notifier": 8084, "audit": 8085}  # each config's default


def _without_credentials(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))  # every host:port a cluster's URL lists


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


def parse_scale(text: str, running: Sequence[str] = SERVICES) -> dict[str, int]:
    """``signer=3,router=2`` -> {"signer": 3, "router": 2}; a clear ValueError for anything else."""
    scale: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, equals, count = part.partition("=")
        name = name.strip()
        if not equals:
            raise ValueError(f"`{part}`: write SERVICE=N, e.g. signer=3")
        if name not in SERVICES:
            raise ValueError(f"`{name}` is not a service; choose from {', '.join(SERVICES)}")
        if name not in running:
            raise ValueError(f"`{name}` is not among the services being run ({', '.join(running)})")
        if name in scale:
            raise ValueError(f"`{name}` is scaled twice")
        try:
            scale[name] = int(count)
        except ValueError:
            raise ValueError(f"`{part}`: the number of processes must be a whole number, e.g. {name}=2") from None
        if scale[name] < 1:
            raise ValueError(f"`{part}`: a service runs as at least 1 process")
    return scale


def replica_environment(service: str, replica: int, replicas: int, environment: Mapping[str, str]) -> dict[str, str]:
    """A replica's environment: its service's, plus, when the service runs as more than one process, port sharing
    and which of them it is."""
    child = child_environment(service, environment)
    if replicas > 1:
        child.update(PARAAF_HTTP_REUSE_PORT="true", PARAAF_REPLICA=str(replica))
    return child


async def _run_one(
    name: str, stopping: asyncio.Event, output: IO[bytes] | None, replica: int = 1, replicas: int = 1
) -> None:
    log = structlog.get_logger().bind(child=name, **({"replica": replica} if replicas > 1 else {}))
    failures = 0
    while not stopping.is_set():
        started = time.monotonic()
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", f"services.{name}", env=replica_environment(name, replica, replicas, os.environ),
            stdout=output, stderr=output,
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


async def _announce_when_up(names: Sequence[str], lines: Sequence[str], stopping: asyncio.Event) -> None:
    """Print ``lines`` to the terminal once every service answers on /health."""
    async with httpx.AsyncClient(timeout=2) as client:
        for name in names:
            port = int(os.environ.get(f"PARAAF_{name.upper()}_PORT", _PORTS[name]))
            while not stopping.is_set():
                try:
                    if (await client.get(f"http://127.0.0.1:{port}/health")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.5)
    if not stopping.is_set():
        print("\n".join(lines), flush=True)


async def supervise(
    names: Sequence[str],
    *,
    mail_catcher: bool,
    output: IO[bytes] | None = None,
    when_up: Sequence[str] = (),
    scale: Mapping[str, int] | None = None,
) -> None:
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    counts = {name: (scale or {}).get(name, 1) for name in names}
    tasks = [
        asyncio.create_task(_run_one(name, stopping, output, replica, counts[name]))
        for name in names
        for replica in range(1, counts[name] + 1)
    ]
    if when_up:
        tasks.append(asyncio.create_task(_announce_when_up(names, when_up, stopping)))
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
