"""A city's year, played through the running services in a few minutes.

Every service reads its clock from one file (PARAAF_CLOCK_FILE), which this
moves forward through the year, month by month. Each month the integrating
systems submit that month's documents over the queue, and the signers act on
the request mails as they arrive: most sign (in two waves, hours to days
apart, so the times to completion differ), some decline with a reason, a few
let a request wait. In one month the Omgeving head's mailbox refuses mail, so
her requests fail to be delivered and those permits stay waiting. July is the
mayor's holiday, so the router asks his substitute: the demo city has it in
July 2026 (deploy/demo/city.xlsx), and a year played on a day whose year
holds another July registers it there, as an operator would.
Where the clock passes a waiting request's reminder time, the notifier's
reminder goes out with a fresh link that replaces the request's (issue 8): a
signer acts on her latest mail, as the page of a replaced link tells her to.
Nothing is written into a table behind the services' backs: what the figures
count afterwards is what the router, intake, notifier and audit recorded.
"""

import asyncio
import html
import os
import random
import re
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx

from services.signer.i18n import texts
from shared.clock import FileClock
from tests.support.pdfs import make_pdf
from tests.support.smtp import Received, SmtpServer
from tests.support.system import System, follow_link, submission

__all__ = ["TUCHT_FLOW", "TUCHT_REASON", "Plan", "SimulatedYear", "today"]

ZONE = ZoneInfo("Europe/Brussels")
TUCHT_REASON = "Betrokkene betwist de feiten van het tuchtdossier"
REASONS = ("Bedrag klopt niet", "Verkeerde bijlage", "Eerst bespreken op het college")
REFUSING = "olga.oyen@demo.paraaf.be"  # the Omgeving head's mailbox, full in the year's fifth month
# The shielded group's flow, loaded beside the demo city's own.
TUCHT_FLOW = """key: tuchtdossier
title: Tuchtdossier
department: Personeel
group: tucht
confidential: true
steps:
  - action: sign
    signers: [person:karel.claes]
"""
STEPS = {"collegebesluit": 2, "omgevingsvergunning": 2, "evaluatieverslag": 2, "tuchtdossier": 1}
SOURCES = ("notula", "permits", "portal")
_REQUEST = re.compile(r"^(?:Ter ondertekening|Ter goedkeuring|For signature|For approval|À signer|À approuver) ?: (?P<title>.+)$")
_REMINDER = re.compile(r'^(?:Herinnering: "(?P<nl>.+)" wacht op uw|Rappel : « (?P<fr>.+) » attend votre|Reminder: "(?P<en>.+)" awaits your) ')
# What the signing page says of a link a newer mail (a reminder's) replaced, in each language.
_REPLACED = tuple(texts(language)["gone_revoked"] for language in ("nl", "fr", "en"))
_STEP = re.compile(r"\((?:stap|step|étape) (\d+) (?:van|of|sur) \d+\)")


def today() -> datetime:
    """Now; or the day PARAAF_TEST_TODAY names (YYYY-MM-DD), to play a year as it is played on that day: which
    weekdays its months start on (and so which reminders fall due), whether it holds the demo city's July 2026."""
    named = os.environ.get("PARAAF_TEST_TODAY")
    if not named:
        return datetime.now(UTC)
    return datetime.combine(datetime.strptime(named, "%Y-%m-%d").date(), datetime.now(UTC).time(), UTC)


@dataclass
class Plan:
    """One document of the year and what its signers will do."""

    title: str
    flow: str
    source: str
    month: int
    ref: str = ""  # the source's own reference: a number, never the title (a confidential title stays hidden)
    outcome: str = "completed"  # or "declined" / "waiting" (at ``at_step``), "undelivered" (step 1's mail bounces)
    at_step: int = 0
    reason: str = ""


class SimulatedYear:
    def __init__(
        self, system: System, smtp: SmtpServer, clock: Path, *, first: datetime, documents: int, months: int = 12, seed: int = 2026
    ) -> None:
        self.system, self.smtp, self.clock, self.first = system, smtp, clock, first.astimezone(ZONE)
        self.rng, self.months, self.name = random.Random(seed), months, f"{seed}"
        self.plans = [self._plan(n, documents) for n in range(documents)]
        self.submitted_per_month: Counter[str] = Counter()  # "YYYY-MM" -> documents submitted (the services' clock)
        self._mails: dict[tuple[str, int], Received] = {}  # the latest request or reminder mail of each step
        self._read = 0
        self.answers: Counter[int] = Counter()
        self.reminded = 0  # signers whose link a reminder replaced while they had it, who then used the reminder's
        self.decided: Counter[str] = Counter()  # "signed" / "declined": what the signers did, as the router will record it

    def _plan(self, n: int, total: int) -> Plan:
        month = n * self.months // total
        flow = "tuchtdossier" if n % 40 == 7 else self.rng.choice(["collegebesluit", "collegebesluit", "omgevingsvergunning", "evaluatieverslag"])
        plan = Plan(
            f"{flow.capitalize()} {self.month_start(month):%Y-%m} nr {self.name}-{n}", flow, self.rng.choice(SOURCES), month,
            ref=f"Y{self.name}-{n:04d}",
        )
        last = STEPS[flow]
        if flow == "tuchtdossier":
            plan.outcome, plan.at_step = ("waiting", 1) if n % 80 == 47 else ("declined", 1)
            plan.reason = TUCHT_REASON
        elif month == 4 and flow == "omgevingsvergunning":
            plan.outcome, plan.at_step = "undelivered", 1
        else:
            roll = self.rng.random()
            if roll < 0.08:
                plan.outcome, plan.at_step, plan.reason = "declined", self.rng.randint(1, last), self.rng.choice(REASONS)
            elif roll < 0.08 + (0.25 if month >= self.months - 2 else 0.02):
                plan.outcome, plan.at_step = "waiting", self.rng.randint(1, last)
        return plan

    def month_start(self, month: int) -> datetime:
        """9:00 on ``first``'s day of the month (at most the 28th), ``month`` months on: the year's twelve months lie
        between ``first`` less three days and eleven months on, whatever day it is played, so a window of the last
        366 days holds them all and their last days (a month is played over a week at most) are past."""
        year, index = divmod(self.first.month - 1 + month, 12)
        day = min(self.first.day, 28)
        return datetime.combine(self.first.date().replace(year=self.first.year + year, month=index + 1, day=day), time(9), ZONE)

    async def play(self) -> None:
        self._mayor_away_in_july()
        for month in range(self.months):
            await self._month(month)

    def _mayor_away_in_july(self) -> None:
        for month in range(self.months):
            start = self.month_start(month)
            if start.month == 7 and start.year != 2026:  # July 2026 is the demo city's own
                self.system.cli("absence", "add", "bart.baert", "--from", f"{start.year}-07-01", "--to", f"{start.year}-08-01")

    async def _month(self, month: int) -> None:
        at = self.month_start(month)
        FileClock.set(self.clock, at)
        plans = [p for p in self.plans if p.month == month]
        if month == 4:
            self.smtp.refuse(REFUSING)
        for source in SOURCES:
            bodies = [self._submission(p) for p in plans if p.source == source]
            await self.system.publish_many(bodies, source=source)
        self.submitted_per_month[at.strftime("%Y-%m")] += len(plans)
        going = [p for p in plans if p.outcome != "undelivered"]
        for step in (1, 2):
            asked = [p for p in going if STEPS[p.flow] >= step]
            await self._request_mails(asked, step)
            for wave in (asked[i::2] for i in range(2)):
                at += timedelta(hours=self.rng.uniform(2, 40))
                FileClock.set(self.clock, at)
                await self._act(wave, step)
            going = [p for p in asked if p.outcome == "completed" or p.at_step > step]
        if month == 4:
            await self._bounced([p for p in plans if p.outcome == "undelivered"])
            self.smtp.accept(REFUSING)

    def _submission(self, plan: Plan) -> dict:
        return submission(
            make_pdf(), source=plan.source, external_ref=plan.ref, title=plan.title, flow=plan.flow,
            filename=f"{plan.title.lower().replace(' ', '-')}.pdf", confidential=plan.flow in ("evaluatieverslag", "tuchtdossier"),
        )

    def _read_mails(self) -> None:
        """Note the mails received since the last look: each step's latest request or reminder mail."""
        received = self.smtp.received
        for mail in received[self._read:]:
            steps = _STEP.search(mail.text)
            if (subject := _REQUEST.match(mail.subject)) is not None:
                title = subject["title"]
            elif (reminder := _REMINDER.match(mail.subject)) is not None:
                title = reminder["nl"] or reminder["fr"] or reminder["en"]
            else:
                continue
            if steps:
                self._mails[title, int(steps[1])] = mail
        self._read = len(received)

    async def _request_mails(self, plans: list[Plan], step: int, timeout: float = 120.0) -> None:
        """Wait until each plan's ``step`` has its request mail."""
        wanted = {(p.title, step) for p in plans}
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            self._read_mails()
            missing = wanted - self._mails.keys()
            if not missing:
                return
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"{len(missing)} request mails never came, e.g. {sorted(missing)[:3]}")
            await asyncio.sleep(0.1)

    async def _newer_mail(self, key: tuple[str, int], than: Received, timeout: float = 30.0) -> Received:
        """The mail that replaced ``than``'s link (minted as it left, so it may still be on its way)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            self._read_mails()
            if self._mails[key] is not than:
                return self._mails[key]
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"{key[0]} step {key[1]}: the page says a newer mail came, none did in {timeout:.0f} s")
            await asyncio.sleep(0.1)

    async def _act(self, plans: list[Plan], step: int) -> None:
        """Each signer opens the latest mail of her step (a reminder's link replaces the request's: the clock may be
        days on) and signs or declines; should a reminder go out while she has the page open, the page tells her to use
        the newer mail, and she does."""
        slots = asyncio.Semaphore(8)

        async def one(plan: Plan) -> None:
            if plan.outcome == "waiting" and plan.at_step == step:
                return
            decline = plan.reason if plan.outcome == "declined" and plan.at_step == step else None
            async with slots, httpx.AsyncClient(timeout=60) as browser:  # each signer in their own browser
                self._read_mails()
                mail = self._mails[plan.title, step]
                answer = await follow_link(browser, mail.signing_link, decline_reason=decline)
                if answer.status_code == 410 and any(text in html.unescape(answer.text) for text in _REPLACED):
                    self.reminded += 1
                    mail = await self._newer_mail((plan.title, step), mail)
                    answer = await follow_link(browser, mail.signing_link, decline_reason=decline)
            self.answers[answer.status_code] += 1
            assert answer.status_code == 200, f"{plan.title} step {step}: {answer.status_code} {answer.text[:300]}"
            self.decided["declined" if decline else "signed"] += 1

        await asyncio.gather(*(one(plan) for plan in plans))

    async def _bounced(self, plans: list[Plan], timeout: float = 60.0) -> None:
        """Wait until the refused request mails failed (notification.failed reached the audit log)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while len(await self.system.audit_events("notification.failed", timeout=timeout)) < len(plans):
            assert asyncio.get_running_loop().time() < deadline, "the refused mails were never reported as failed"
            await asyncio.sleep(0.2)

    def count(self, outcome: str) -> int:
        return sum(1 for p in self.plans if p.outcome == outcome)
