"""What the schedulers do once, with two of each: the demo city with router ×2, signer ×3, notifier ×2 and audit ×2
(tests/support/system.py SCALED), its clock in a file every process reads and the test moves. A request waits:
its signer is reminded three times, each reminder mailed once though two notifiers look for due reminders every
second; then she goes on leave, and the absence is applied once though two routers are woken for it: one
request moves to her substitute, one mail asks him, one notice tells her. Afterwards every effect happened once."""

from collections import Counter
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import asyncpg
import httpx
import pytest

from shared.clock import FileClock
from tests.support.invariants import assert_each_effect_once
from tests.support.pdfs import make_pdf
from tests.support.smtp import SmtpServer
from tests.support.system import SCALED, Outcomes, System, demo_city, follow_link, submission

pytestmark = pytest.mark.e2e

BRUSSELS = ZoneInfo("Europe/Brussels")
MONDAY = datetime(2026, 3, 2, 10, 0, tzinfo=BRUSSELS)
REMINDED_AT = [  # 3 working days after the request, then every 2
    datetime(2026, 3, 5, 10, 1, tzinfo=BRUSSELS),
    datetime(2026, 3, 9, 10, 5, tzinfo=BRUSSELS),
    datetime(2026, 3, 11, 10, 9, tzinfo=BRUSSELS),
]
LEAVE_DAY = datetime(2026, 3, 20, 10, 0, tzinfo=BRUSSELS)
ANN, DAVID, BART = "ann.aerts@demo.paraaf.be", "david.dewit@demo.paraaf.be", "bart.baert@demo.paraaf.be"
TITLE = "Collegebesluit schaal"


@pytest.fixture
async def city(database_url: str, amqp_url: str, smtp_server: SmtpServer, secrets_dir: str, tmp_path: Path) -> AsyncIterator[System]:
    clock = tmp_path / "clock"
    FileClock.set(clock, MONDAY)
    async with demo_city(
        "scaled-schedules", database_url=database_url, amqp_url=amqp_url, smtp=smtp_server, secrets_dir=secrets_dir,
        scale=SCALED, PARAAF_CLOCK_FILE=str(clock), PARAAF_SCHEDULER_SECONDS="1", PARAAF_MOVED_NOTICE_WINDOW_SECONDS="0",
    ) as system:
        system.clock = clock  # type: ignore[attr-defined]
        system.smtp = smtp_server  # type: ignore[attr-defined]
        yield system
        await assert_each_effect_once(system)


async def test_reminders_and_an_absence_happen_once_with_two_of_each_scheduler(city: System, smtp_server: SmtpServer) -> None:
    """Three reminders, each mailed once; the absence applied once: one move, one request mail to the substitute,
    one notice to her; the document completes with the substitute's signature on her behalf."""
    clock: Path = city.clock  # type: ignore[attr-defined]
    async with Outcomes(city.amqp_url, "notula.*") as outcomes:
        FileClock.set(clock, MONDAY)  # again: starting the city took some of Monday morning
        await city.publish(submission(make_pdf(), external_ref="SCALE-1", title=TITLE))
        await smtp_server.wait_for_mail(ANN, about=TITLE)
        for number, moment in enumerate(REMINDED_AT, start=1):
            FileClock.set(clock, moment)
            await smtp_server.wait_for_mail(ANN, about=TITLE, count=1 + number)

        FileClock.set(clock, LEAVE_DAY)
        city.cli("absence", "add", "ann.aerts", "--from", "2026-03-20", "--to", "2026-03-30")
        [moved] = await smtp_server.wait_for_mail(DAVID, about=TITLE)
        await smtp_server.wait_for_mail(ANN, count=5)  # the request, three reminders and the notice of the move
        async with httpx.AsyncClient() as browser:
            assert (await follow_link(browser, moved.signing_link)).status_code == 200
            [mayor] = await smtp_server.wait_for_mail(BART, about=TITLE)
            assert (await follow_link(browser, mayor.signing_link)).status_code == 200
        completed = await outcomes.wait("notula.completed", "SCALE-1")

    to_ann = smtp_server.received_by(ANN)
    reminders = [m for m in to_ann if m.subject == f'Herinnering: "{TITLE}" wacht op uw handtekening']
    assert len(reminders) == 3 and len(to_ann) == 5, [m.subject for m in to_ann]
    assert len(smtp_server.received_by(DAVID, about=TITLE)) == 1
    assert not [mail for mail, n in Counter(m.message["Message-ID"] for m in smtp_server.received).items() if n > 1]
    signers = [(s["signer"]["id"], (s["on_behalf_of"] or {}).get("id")) for s in completed["signatures"]]
    assert signers == [("david.dewit", "ann.aerts"), ("bart.baert", None)]
    conn = await asyncpg.connect(city.env["PARAAF_DATABASE_URL"])
    try:
        document_id = completed["document_id"]
        moves = await conn.fetchval(
            "SELECT count(*) FROM audit.log WHERE routing_key = 'signature.reassigned' AND document_id = $1", document_id
        )
        applied = await conn.fetch("SELECT applied_at FROM router.absences WHERE person_id = 'ann.aerts' AND starts_at >= $1", MONDAY)
    finally:
        await conn.close()
    assert moves == 1
    assert len(applied) == 1 and applied[0]["applied_at"] is not None
