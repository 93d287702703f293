"""The attacks of issue 8 against one running demo city for the whole package: every
service its own process, set up as an operator does, with two registered
sources (``notula``: any submitter and ad-hoc steps; ``omgeving``: only its
permit flow and one submitter) and a second city (``othercity``) in the same
installation. Each test does what the attacker does, with the attacker's
credentials, then shows it was refused and that nothing changed.

The refusals are gathered and printed at the end of the run (the attack, and
what Paraaf answered), so CI's log shows them.
"""

import asyncio
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aio_pika
import asyncpg
import pytest

from tests.conftest import Infra, city_on_fresh_install
from tests.support import reports
from tests.support.system import DEMO, System

TOKEN = re.compile(r"(?<![A-Za-z0-9_-])[A-Za-z0-9_-]{43}(?![A-Za-z0-9_-])")


def attempted(attack: str, answer: str) -> None:
    """Record an attack and what Paraaf answered, for the summary at the end of the run (tests/support/reports.py)."""
    reports.add("attacks tried against the running system, and the answers", f"- {attack}\n    -> {answer}")


@pytest.fixture(scope="package")
async def city(infra: Infra, secrets_dir: str) -> AsyncIterator[System]:
    async with city_on_fresh_install(infra, secrets_dir, "security", PARAAF_DOWNLOAD_TTL_HOURS="1") as system:
        system.add_source("omgeving", "--org", "default", "--flows", "omgevingsvergunning", "--submitters", "elen.elaut")
        system.cli("org", "create", "othercity", "--name", "Another city")
        system.cli("directory", "import", "--org", "othercity", str(DEMO / "city.xlsx"))
        system.cli("flows", "load", "--org", "othercity", str(DEMO / "flows"))
        yield system


@dataclass(frozen=True)
class State:
    """What an attack could change: counted before and after."""

    mails: int
    documents: int
    active: int
    certificates: int
    tokens: int
    signatures: int
    log_entries: int

    @classmethod
    async def of(cls, system: System) -> "State":
        conn = await asyncpg.connect(system.env["PARAAF_DATABASE_URL"])
        try:
            row = await conn.fetchrow(
                "SELECT (SELECT count(*) FROM intake.documents) AS documents,"
                " (SELECT count(*) FROM router.instances WHERE status = 'active') AS active,"
                " (SELECT count(*) FROM signer.certificates) AS certificates,"
                " (SELECT count(*) FROM signer.tokens) AS tokens,"
                " (SELECT coalesce(sum(revision), 0) FROM signer.documents) AS signatures,"
                " (SELECT count(*) FROM audit.log) AS log_entries"
            )
        finally:
            await conn.close()
        return cls(mails=len(system.smtp.received), **dict(row))  # type: ignore[attr-defined]


async def settle(seconds: float = 2.0) -> None:
    """Time for every service to have acted on what was just published, before asserting nothing happened."""
    await asyncio.sleep(seconds)


async def refusal(work: Any) -> str:
    """Run the attacker's broker step; the broker's refusal (or "accepted" when there was none)."""
    try:
        await work()
    except (aio_pika.exceptions.AMQPError, aio_pika.exceptions.ChannelClosed) as exc:
        return str(exc)
    return "accepted"


async def drain(amqp_url: str, queue: str) -> list[aio_pika.abc.AbstractIncomingMessage]:
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        found = await channel.declare_queue(queue, passive=True)
        messages = []
        while (message := await found.get(fail=False, no_ack=True)) is not None:
            messages.append(message)
        return messages


def body_of(message: aio_pika.abc.AbstractIncomingMessage) -> dict[str, Any]:
    return json.loads(message.body)
