"""The operators' figures after a year of signing, every service its own OS
process: headless Chromium shows the dashboard, and its charts' totals equal
the JSON API's and a plain SQL count's.

How the year is made, honestly: a simulated year cannot come from the
services themselves. PARAAF_CLOCK_START moves the services' clock, but the
router stamps its rows with the database's now() and events carry the wall
clock, so everything the pipeline does lands today; and 500 documents through
the pipeline take minutes here, not the ~60 s this test may cost. So three
documents go through the real pipeline (one signed by both signers, one
declined with a reason, one waiting on a signer whose mailbox refuses mail: a
real notification.failed), and 500 documents are written beside them, spread
over the past year, into the tables exactly as the services write them — the
router's instances and requests, intake's documents — with their declines and
failed mails appended to the audit log through the audit service's own store
(PostgresAuditStore.append, the hash chain intact). A dozen of those are
disciplinary files of the shielded group `tucht`: the figures must count them
without naming the people asked or repeating what they wrote.

Screenshots (desktop and phone) are kept in tests/artifacts/<test>/.
"""

import json
import random
from collections import Counter
from collections.abc import AsyncIterator
from datetime import date, datetime, timedelta
from pathlib import Path
from uuid import UUID, uuid4
from zoneinfo import ZoneInfo

import asyncpg
import httpx
import pytest
from playwright.async_api import Browser, Page, expect

from services.audit.store import PostgresAuditStore
from shared.events import NotificationFailed, PersonRef, SignatureDeclined
from tests.support.pdfs import make_pdf
from tests.support.portal import sign_in_by_mail
from tests.support.smtp import SmtpServer
from tests.support.system import System, demo_city, follow_link, submission

pytestmark = pytest.mark.e2e

ZONE = ZoneInfo("Europe/Brussels")  # the signer's default time zone: months are the city's months
EMAIL = "{}@demo.paraaf.be"
SEEDED = 500
TUCHT_REASON = "Betrokkene betwist de feiten van het tuchtdossier"

# flow -> (department, group, confidential, steps as (action, person))
FLOWS = {
    "collegebesluit": ("Secretariaat", "bestuur", False, [("sign", "ann.aerts"), ("sign", "bart.baert")]),
    "omgevingsvergunning": ("Omgeving", "omgeving", False, [("approve", "olga.omgeving"), ("sign", "ann.aerts")]),
    "evaluatieverslag": ("Personeel", "personeel", True, [("sign", "pieter.peeters"), ("sign", "ann.aerts")]),
    "tuchtdossier": ("Personeel", "tucht", True, [("sign", "karel.claes")]),  # the shielded group's
}
NAMES = {
    "ann.aerts": "Ann Aerts", "bart.baert": "Bart Baert", "olga.omgeving": "Olga Oyen", "pieter.peeters": "Pieter Peeters",
    "karel.claes": "Karel Claes", "sofie.smet": "Sofie Smet", "elen.elaut": "Elen Elaut",
}


@pytest.fixture
async def system(request: pytest.FixtureRequest, database_url: str, amqp_url: str, smtp_server: SmtpServer, secrets_dir: str) -> AsyncIterator[System]:
    async with demo_city(request.node.name, database_url=database_url, amqp_url=amqp_url, smtp=smtp_server, secrets_dir=secrets_dir) as system:
        yield system


def _person(person: str) -> dict:
    return PersonRef(id=person, name=NAMES[person], email=EMAIL.format(person)).model_dump()


class Year:
    """500 documents over the past year, as the router and intake keep them; what was written, counted in Python."""

    def __init__(self, now: datetime, *, count: int = SEEDED, name: str = "SEED") -> None:
        self.now, self.rng, self.count, self.name = now, random.Random(2026), count, name
        self.instances: list[tuple] = []
        self.intake: list[tuple] = []
        self.requests: list[tuple] = []
        self.declines: list[tuple[UUID, UUID, datetime, str]] = []  # document, request, when, reason
        self.mail_failures: list[tuple[UUID, datetime]] = []
        self.documents_per_month: Counter[str] = Counter()
        self.signatures_per_department: Counter[str] = Counter()

    def build(self) -> "Year":
        for n in range(self.count):
            flow = "tuchtdossier" if n % 40 == 7 else self.rng.choice(["collegebesluit", "collegebesluit", "omgevingsvergunning", "evaluatieverslag"])
            created = self.now - timedelta(days=self.rng.uniform(1, 364), minutes=self.rng.uniform(0, 600))
            self._document(n, flow, created)
        return self

    def _document(self, n: int, flow: str, created: datetime) -> None:
        department, group, confidential, steps = FLOWS[flow]
        document_id, outcome = uuid4(), self.rng.choices(["completed", "declined", "active"], [85, 8, 7])[0]
        if flow == "tuchtdossier":
            outcome = "active" if n % 80 == 7 else "declined"
        at, status, current = created, "completed", 1
        for step, (action, person) in enumerate(steps, start=1):
            current = step
            asked, on_behalf = at, None
            if person == "bart.baert" and self.rng.random() < 0.3:  # the mayor away: his substitute signs
                person, on_behalf = "sofie.smet", _person("bart.baert")
            last = step == len(steps)
            if last and outcome != "completed":
                status = outcome
                decided = asked + timedelta(hours=self.rng.uniform(1, 72)) if outcome == "declined" else None
                if decided and decided > self.now:
                    decided = self.now - timedelta(minutes=1)
                self._request(document_id, step, action, person, on_behalf, outcome if outcome == "declined" else "pending", asked, decided)
                if outcome == "declined":
                    reason = TUCHT_REASON if flow == "tuchtdossier" else self.rng.choice(["Bedrag klopt niet", "Verkeerde bijlage"])
                    self.declines.append((document_id, self.requests[-1][0], decided, reason))
                break
            at = min(asked + timedelta(hours=self.rng.uniform(0.5, 96)), self.now - timedelta(minutes=1))
            self._request(document_id, step, action, person, on_behalf, "signed", asked, at)
            self.signatures_per_department[department] += 1
        if n % 25 == 3:
            self.mail_failures.append((document_id, created + timedelta(minutes=1)))
        updated = max([created] + [r[11] for r in self.requests[-len(steps):] if r[1] == document_id and r[11]])
        self.instances.append((
            document_id, "default", flow, f"Document {n}", f"document-{n}.pdf", json.dumps(_person("elen.elaut")), confidential,
            department, group, json.dumps([{"action": a, "mode": "all", "signers": [f"person:{p}"]} for a, p in steps]),
            current, status, "0" * 64, created, updated,
        ))
        source = self.rng.choice(["notula", "permits", "portal"])
        self.intake.append((
            document_id, "default", source, f"{self.name}-{n}", f"Document {n}", flow, "elen.elaut", confidential, f"document-{n}.pdf",
            "nl", "{}", "0" * 64, created,
        ))
        self.documents_per_month[created.astimezone(ZONE).strftime("%Y-%m")] += 1

    def _request(self, document_id: UUID, step: int, action: str, person: str, on_behalf: dict | None, status: str,
                 asked: datetime, decided: datetime | None) -> None:
        self.requests.append((
            uuid4(), document_id, "default", step, f"person:{person}", person, json.dumps(_person(person)),
            json.dumps(on_behalf) if on_behalf else None, action, status, asked, decided,
        ))

    async def write(self, conn: asyncpg.Connection) -> None:
        await conn.executemany(
            "INSERT INTO router.instances (document_id, org, flow_key, title, filename, submitted_by, confidential, department,"
            " group_key, steps, current_step, status, pdf_sha256, created_at, updated_at)"
            " VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8, $9, $10::jsonb, $11, $12, $13, $14, $15)",
            self.instances,
        )
        await conn.executemany(
            "INSERT INTO router.requests (request_id, document_id, org, step, entry, person_id, person, on_behalf_of, action,"
            " status, created_at, decided_at) VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8::jsonb, $9, $10, $11, $12)",
            self.requests,
        )
        await conn.executemany(
            "INSERT INTO intake.documents (document_id, org, source, external_ref, title, flow, submitted_by, confidential,"
            " filename, language, metadata, pdf_sha256, status, created_at, updated_at)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11::jsonb, $12, 'accepted', $13, $13)",
            self.intake,
        )
        for document_id, request_id, when, reason in self.declines:
            signer = PersonRef.model_validate(_person("karel.claes" if reason == TUCHT_REASON else "ann.aerts"))
            event = SignatureDeclined(correlation_id=document_id, occurred_at=when, request_id=request_id, step=1, signer=signer, reason=reason)
            await self._audit(conn, event)
        for document_id, when in self.mail_failures:
            event = NotificationFailed(correlation_id=document_id, occurred_at=when, kind="signature_request",
                                       recipient=EMAIL.format("ann.aerts"), reason="SMTPRecipientsRefused: 550 5.1.1 No such user here")
            await self._audit(conn, event)

    @staticmethod
    async def _audit(conn: asyncpg.Connection, event: SignatureDeclined | NotificationFailed) -> None:
        async with conn.transaction():
            await PostgresAuditStore(conn).append(event.routing_key, json.loads(event.model_dump_json()))


async def _real_documents(system: System, smtp: SmtpServer) -> None:
    """Three documents through the real pipeline: signed by both, declined, and one whose signer's mail bounces."""
    smtp.refuse(EMAIL.format("olga.oyen"))
    await system.publish(submission(make_pdf(), external_ref="REAL-1"))
    await system.publish(submission(make_pdf(), external_ref="REAL-2", title="Collegebesluit 43"))
    await system.publish(submission(make_pdf(), external_ref="REAL-3", title="Vergunning Kerkstraat 3", flow="omgevingsvergunning"))
    async with httpx.AsyncClient() as director, httpx.AsyncClient() as mayor:
        first, second = await smtp.wait_for_mail(EMAIL.format("ann.aerts"), count=2)
        signed, declined = (first, second) if "42" in first.subject else (second, first)
        assert (await follow_link(director, signed.signing_link)).status_code == 200
        assert (await follow_link(director, declined.signing_link, decline_reason="Bedrag klopt niet")).status_code == 200
        mail = (await smtp.wait_for_mail(EMAIL.format("bart.baert")))[0]
        assert (await follow_link(mayor, mail.signing_link)).status_code == 200
    await system.audit_events("notification.failed")
    await system.audit_events("document.completed")
    await system.audit_events("document.declined")


async def _sql_counts(conn: asyncpg.Connection, start: date, end: date) -> tuple[dict[str, int], dict[str, int]]:
    """Documents per month and signatures per department, counted straight from the router's tables."""
    window = ("(($2::date)::timestamp AT TIME ZONE 'Europe/Brussels')", "(($3::date + 1)::timestamp AT TIME ZONE 'Europe/Brussels')")
    months = await conn.fetch(
        "SELECT to_char(created_at AT TIME ZONE 'Europe/Brussels', 'YYYY-MM') AS month, count(*) FROM router.instances"
        f" WHERE org = $1 AND created_at >= {window[0]} AND created_at < {window[1]} GROUP BY 1", "default", start, end,
    )
    departments = await conn.fetch(
        "SELECT i.department, count(*) FROM router.requests r JOIN router.instances i USING (document_id)"
        f" WHERE r.org = $1 AND r.status = 'signed' AND r.decided_at >= {window[0]} AND r.decided_at < {window[1]} GROUP BY 1",
        "default", start, end,
    )
    return {r["month"]: r["count"] for r in months}, {r["department"]: r["count"] for r in departments}


_CHARTS = """() => Object.fromEntries([...document.querySelectorAll('canvas[data-figure]')].map(c => {
  const chart = Chart.getChart(c);
  return [c.dataset.figure, {labels: chart.data.labels, values: chart.data.datasets[0].data}];
}))"""


async def _signed_in_operator(browser: Browser, system: System, smtp: SmtpServer) -> Page:
    """Iris, the operator, asks for a sign-in link, opens it from her mail and signs in."""
    page = await (await browser.new_context(locale="nl-BE", viewport={"width": 1280, "height": 900})).new_page()
    await page.goto(system.public_url + "/p/sign-in")
    await page.locator("#email").fill(EMAIL.format("iris.ilegems"))
    await page.locator("#send-link").click()
    mail = (await smtp.wait_for_mail(EMAIL.format("iris.ilegems")))[0]
    link = next(word for word in mail.text.split() if "/p/sign-in/" in word)
    await page.goto(link)
    await page.locator("#use-link").click()
    await expect(page.locator("#who")).to_contain_text("Iris Ilegems")
    return page


async def _shots(page: Page, folder: Path, name: str) -> None:
    for width, height, label in ((1280, 900, "desktop"), (390, 844, "phone")):
        await page.set_viewport_size({"width": width, "height": height})
        await page.screenshot(path=str(folder / f"{name}-{label}.png"), full_page=True)
    await page.set_viewport_size({"width": 1280, "height": 900})


async def test_the_dashboards_chart_totals_equal_the_api_and_a_sql_count_after_a_seeded_year(
    system: System, smtp_server: SmtpServer, chromium: Browser
) -> None:
    """After 3 real documents and 500 seeded over a year, the operator's dashboard (filtered on the year) draws
    documents per month and signatures per department whose totals equal the JSON API's and a SQL count's; the
    tables say the same; the shielded group's signer and words appear nowhere; a non-operator gets 404, a script
    with an operator's API key the same JSON."""
    await _real_documents(system, smtp_server)
    conn = await asyncpg.connect(system.env["PARAAF_DATABASE_URL"])
    try:
        now = await conn.fetchval("SELECT now()")
        year = Year(now).build()
        await year.write(conn)
        # The year before the period asked for (401 to 764 days back): never counted in it.
        await Year(now - timedelta(days=400), count=40, name="BEFORE").build().write(conn)
        start, end = (now - timedelta(days=366)).astimezone(ZONE).date(), now.astimezone(ZONE).date()
        sql_months, sql_departments = await _sql_counts(conn, start, end)
    finally:
        await conn.close()
    assert sum(sql_months.values()) == SEEDED + 3  # the SQL count sees what was written, and the real ones
    assert {m: c for m, c in sql_months.items()} == year.documents_per_month + Counter({now.astimezone(ZONE).strftime("%Y-%m"): 3})
    assert sql_departments["Omgeving"] == year.signatures_per_department["Omgeving"]  # REAL-3 waits: nothing signed
    assert sql_departments["Secretariaat"] == year.signatures_per_department["Secretariaat"] + 2  # REAL-1, by both

    page = await _signed_in_operator(chromium, system, smtp_server)
    fetched, errors = [], []
    page.on("request", lambda request: fetched.append(request.url))
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    await page.locator("#nav-ops").click()  # the portal's menu, then the operators' own
    await page.locator("#nav-figures").click()
    await page.locator("#from").fill(start.isoformat())
    await page.locator("#to").fill(end.isoformat())
    await page.locator("#show").click()
    await expect(page.locator("#figures")).to_have_attribute("data-charts", "ready")
    await _shots(page, system.logs, "01-figures-year")
    charts = await page.evaluate(_CHARTS)
    assert all(url.startswith(system.public_url + "/") for url in fetched), fetched  # Chart.js too: no CDN
    assert errors == []  # nothing refused by the page's Content-Security-Policy
    policy = (await page.request.get(page.url)).headers["content-security-policy"]
    assert "script-src 'self';" in policy and "unsafe-eval" not in policy
    api = await (await page.request.get(f"{system.public_url}/p/ops/figures.json?from={start}&to={end}")).json()

    api_months = {r["key"]: r["count"] for r in api["documents"]["by_month"]}
    chart_months = dict(zip(charts["documents.by_month"]["labels"], charts["documents.by_month"]["values"], strict=True))
    assert chart_months == api_months
    assert {m: c for m, c in api_months.items() if c} == sql_months
    assert sum(chart_months.values()) == api["totals"]["documents"] == SEEDED + 3

    api_departments = {r["key"]: r["count"] for r in api["signatures"]["by_department"]}
    assert api_departments == sql_departments
    chart_departments = dict(zip(charts["signatures.by_department"]["labels"], charts["signatures.by_department"]["values"], strict=True))
    assert chart_departments == api_departments
    table = await page.locator("#t-signatures-by_department tbody tr").evaluate_all(
        "rows => rows.map(r => [r.dataset.key, Number(r.querySelector('td').dataset.count)])"
    )
    assert dict(table) == api_departments

    # The shielded group's disciplinary files: counted, never named, their words never shown.
    pending = {r.get("key"): r["count"] for r in api["pending"]["by_signer"]}
    assert "karel.claes" not in pending and pending[None] >= 1
    assert all(r.get("key") != TUCHT_REASON for r in api["declines"]["reasons"])
    assert sum(r["count"] for r in api["declines"]["reasons"]) == api["totals"]["declines"] == len(year.declines) + 1
    assert api["totals"]["mail_failures"] == len(year.mail_failures) + 1
    html = await page.content()
    assert TUCHT_REASON not in html and "Karel Claes" not in html

    csv_text = await (await page.request.get(f"{system.public_url}/p/ops/figures.csv?from={start}&to={end}")).text()
    csv_months = {line.split(",")[1]: int(line.split(",")[3]) for line in csv_text.splitlines() if line.startswith("documents.by_month,")}
    assert csv_months == api_months

    await page.locator("#department").select_option("Omgeving")
    await page.locator("#show").click()
    await expect(page.locator("#figures")).to_have_attribute("data-charts", "ready")
    await _shots(page, system.logs, "02-figures-omgeving")
    charts = await page.evaluate(_CHARTS)
    assert sum(charts["signatures.by_month"]["values"]) == sql_departments["Omgeving"]

    karel = await sign_in_by_mail(system.public_url, smtp_server, EMAIL.format("karel.claes"))
    async with httpx.AsyncClient(base_url=system.public_url) as nobody:
        try:
            for path in ("/p/ops/figures", "/p/ops/figures.json", "/p/ops/figures.csv"):
                assert (await karel.get(path)).status_code == 404, path
            assert "/p/ops/figures" not in (await karel.get("/p/to-sign")).text  # no menu entry either
        finally:
            await karel.aclose()
        assert (await nobody.get("/p/ops/figures.json")).status_code == 401
        script = await nobody.get(f"/p/ops/figures.json?from={start}&to={end}", headers=system.operator_headers("operate"))
        assert script.status_code == 200 and script.json()["totals"] == api["totals"]  # a script with an operator's key
