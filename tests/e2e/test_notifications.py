"""What people find in their mailbox, with intake, router, signer and audit
running as their own processes on real RabbitMQ, PostgreSQL and SMTP: every
mail kind in Dutch, French and English with a link the running signer
answers, reminders on a clock the test moves, and mail that waits out an
SMTP outage or a refused address without holding up a single document."""

import asyncio
import base64
import json
import re
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4
from zoneinfo import ZoneInfo

import asyncpg
import httpx
import pytest

from services.intake.domain import SourcePolicy
from shared.contract import LANGUAGES
from shared.events import PersonRef, SignatureReassigned, SignatureRequested
from tests.support.notifier import FakeClock, notifier_settings, running_notifier
from tests.support.pdfs import make_pdf
from tests.support.smtp import Received, SmtpServer
from tests.support.system import Outcomes, System, follow_link, submission

pytestmark = pytest.mark.e2e

BRUSSELS = ZoneInfo("Europe/Brussels")
MONDAY = datetime(2026, 3, 2, 10, 0, tzinfo=BRUSSELS)

# Per language: a signer, their substitute, a submitter.
PEOPLE = {
    "nl": [("noor.peeters", "Noor Peeters"), ("wim.wouters", "Wim Wouters"), ("elen.elaut", "Elen Elaut")],
    "fr": [("marc.maes", "Marc Maes"), ("chloe.dubois", "Chloé Dubois"), ("luc.lambert", "Luc Lambert")],
    "en": [("david.dewit", "David De Wit"), ("emma.evans", "Emma Evans"), ("grace.green", "Grace Green")],
}
SUBJECTS = {
    "nl": {
        "request": "Ter ondertekening: {}", "reminder": 'Herinnering: "{}" wacht op uw handtekening',
        "reassigned": "Aan u overgedragen ter ondertekening: {}", "moved": "Tijdens uw afwezigheid overgedragen: 1 document",
        "completed": "Ondertekend: {}", "declined": "Geweigerd: {}",
    },
    "fr": {
        "request": "À signer : {}", "reminder": "Rappel : « {} » attend votre signature",
        "reassigned": "Transmis pour signature : {}", "moved": "Transmis pendant votre absence : 1 document",
        "completed": "Signé : {}", "declined": "Refusé : {}",
    },
    "en": {
        "request": "For signature: {}", "reminder": 'Reminder: "{}" awaits your signature',
        "reassigned": "Passed on to you for signature: {}", "moved": "Passed on while you are away: 1 document",
        "completed": "Signed: {}", "declined": "Declined: {}",
    },
}
REASONS = {"nl": "Het bedrag klopt niet", "fr": "Le montant est erroné", "en": "The amount is wrong"}
_DOWNLOAD = re.compile(r"https?://[^\s<>\"]+/d/[A-Za-z0-9_-]+")


def email(person_id: str) -> str:
    return f"{person_id}@city.example"


def person(language: str, role: int) -> PersonRef:
    person_id, name = PEOPLE[language][role]
    return PersonRef(id=person_id, name=name, email=email(person_id), language=language)


def signer_of(language: str) -> PersonRef:
    return person(language, 0)


def substitute_of(language: str) -> PersonRef:
    return person(language, 1)


def submitter_of(language: str) -> PersonRef:
    return person(language, 2)


def directory_yaml() -> str:
    rows = [
        f"  - {{id: {pid}, name: {name}, email: {email(pid)}, department: Secretariaat, language: {language}}}"
        for language, people in PEOPLE.items()
        for pid, name in people
    ]
    return "people:\n" + "\n".join(rows) + "\n"


def document(ref: str, title: str, signers: list[PersonRef], submitter: PersonRef, mode: str = "all") -> dict[str, Any]:
    return submission(
        make_pdf(),
        external_ref=ref,
        title=title,
        flow=None,
        steps=[{"action": "sign", "mode": mode, "signers": [f"person:{s.id}" for s in signers]}],
        submitted_by=submitter.id,
        language=submitter.language,
    )


def download_link(mail: Received) -> str:
    match = _DOWNLOAD.search(mail.text)
    assert match is not None, f"no download link in {mail.subject!r}:\n{mail.text}"
    return match.group(0)


def mails_to(smtp: SmtpServer, who: PersonRef) -> list[Received]:
    return [m for m in smtp.received if who.email in m.to]


async def wait_for_subject(smtp: SmtpServer, who: PersonRef, subject: str, timeout: float = 30.0) -> Received:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        found = [m for m in mails_to(smtp, who) if m.subject == subject]
        if found:
            return found[0]
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"no {subject!r} to {who.email}; got {[m.subject for m in mails_to(smtp, who)]}")
        await asyncio.sleep(0.1)


async def opens(link: str) -> int:
    """What a person sees when they click: the HTTP status of the page behind the link."""
    async with httpx.AsyncClient() as client:
        return (await client.get(link)).status_code


async def audit(database_url: str, routing_key: str) -> list[dict[str, Any]]:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("SELECT payload FROM audit.log WHERE routing_key = $1 ORDER BY seq", routing_key)
    finally:
        await conn.close()
    return [json.loads(r["payload"])["event"] for r in rows]


async def wait_for_audit(database_url: str, routing_key: str, count: int = 1, timeout: float = 30.0) -> list[dict[str, Any]]:
    deadline = asyncio.get_running_loop().time() + timeout
    while len(found := await audit(database_url, routing_key)) < count:
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{len(found)} of {count} {routing_key} in the audit log")
        await asyncio.sleep(0.2)
    return found


async def make_system(
    request: pytest.FixtureRequest, tmp_path: Path, database_url: str, amqp_url: str, smtp: SmtpServer, secrets_dir: str, **env: str
) -> System:
    system = System(
        name=request.node.name, database_url=database_url, amqp_url=amqp_url, smtp=smtp, secrets_dir=secrets_dir, extra_env=env
    )
    await system.set_up()
    await system.register(SourcePolicy("notula", "default", ad_hoc_steps=True))
    directory = tmp_path / "directory.yaml"
    directory.write_text(directory_yaml())
    system.cli("directory", "import", str(directory))
    return system


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(MONDAY)


@pytest.fixture
async def city(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    database_url: str,
    amqp_url: str,
    smtp_server: SmtpServer,
    secrets_dir: str,
    clock: FakeClock,
) -> AsyncIterator[System]:
    """Intake, router, signer and audit as processes; the notifier in this process, on the test's clock."""
    system = await make_system(request, tmp_path, database_url, amqp_url, smtp_server, secrets_dir)
    others = ["intake", "router", "signer", "audit"]
    for service in others:
        system.start_service(service)
    await system.wait_healthy(others)
    settings = notifier_settings(
        database_url, amqp_url, smtp_server, system.ports["notifier"], secrets_dir=secrets_dir, signer_internal_url=system.public_url
    )
    async with running_notifier(settings, clock):
        yield system
    assert all(code == 0 for code in system.stop().values()), "a service did not stop cleanly"


async def test_every_mail_kind_in_every_language_reaches_its_person_with_a_working_link(
    city: System, smtp_server: SmtpServer, clock: FakeClock, database_url: str
) -> None:
    """Request, reminder, reassigned, absence notice, completed and declined mails, in nl, fr and en: right person, right subject, and links the signer answers."""
    titles = {(lang, n): f"Besluit {lang.upper()}-{n}" for lang in LANGUAGES for n in (1, 2, 3)}
    async with Outcomes(city.amqp_url, "notula.*") as outcomes:
        for (lang, n), title in titles.items():
            await city.publish(document(f"{lang}-{n}", title, [signer_of(lang)], submitter_of(lang)))

        # 1. Each signer is asked to sign their three documents, in their language.
        requests: dict[tuple[str, int], Received] = {}
        for (lang, n), title in titles.items():
            requests[lang, n] = await wait_for_subject(smtp_server, signer_of(lang), SUBJECTS[lang]["request"].format(title))
            assert await opens(requests[lang, n].signing_link) == 200

        # 2. Document 2 is signed, document 3 declined: the submitter hears of both.
        async with httpx.AsyncClient() as browser:
            for lang in LANGUAGES:
                assert (await follow_link(browser, requests[lang, 2].signing_link)).status_code == 200
                declined = await follow_link(browser, requests[lang, 3].signing_link, decline_reason=REASONS[lang])
                assert declined.status_code == 200
        for lang in LANGUAGES:
            done = await wait_for_subject(smtp_server, submitter_of(lang), SUBJECTS[lang]["completed"].format(titles[lang, 2]))
            async with httpx.AsyncClient() as browser:
                pdf = await browser.get(download_link(done))
            assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
            no = await wait_for_subject(smtp_server, submitter_of(lang), SUBJECTS[lang]["declined"].format(titles[lang, 3]))
            assert REASONS[lang] in no.text and signer_of(lang).name in no.text
            await outcomes.wait("notula.completed", f"{lang}-2")

    # 3. Three working days later only the document still open is reminded, with a fresh link.
    clock.advance(timedelta(days=3, minutes=1))
    reminders = {
        lang: await wait_for_subject(smtp_server, signer_of(lang), SUBJECTS[lang]["reminder"].format(titles[lang, 1]))
        for lang in LANGUAGES
    }
    for lang, reminder in reminders.items():
        assert reminder.signing_link != requests[lang, 1].signing_link
        assert await opens(reminder.signing_link) == 200
    await asyncio.sleep(1.0)
    for lang in LANGUAGES:
        assert len(mails_to(smtp_server, signer_of(lang))) == 4, "three requests and one reminder, nothing for signed or declined"

    # 4. The signer goes on leave: the router moves document 1 to the substitute (played here by the test).
    asked = {e["title"]: e for e in await audit(database_url, "signature.requested")}
    for lang in LANGUAGES:
        original = SignatureRequested.model_validate(asked[titles[lang, 1]])
        new_request = uuid4()
        await city.publish_as(
            "router",
            SignatureReassigned.caused_by(
                original, request_id=original.request_id, new_request_id=new_request, from_person=original.signer,
                to_person=substitute_of(lang), reason="absent", title=original.title,
            ),
            SignatureRequested.caused_by(
                original, **{
                    **original.model_dump(include={"step", "step_count", "action", "title", "filename", "submitted_by", "pdf_sha256"}),
                    "request_id": new_request, "signer": substitute_of(lang), "on_behalf_of": original.signer,
                    "reason": "absent", "replaces": original.request_id,
                },
            ),
        )
    for lang in LANGUAGES:
        taken_over = await wait_for_subject(
            smtp_server, substitute_of(lang), SUBJECTS[lang]["reassigned"].format(titles[lang, 1])
        )
        assert signer_of(lang).name in taken_over.text  # on whose behalf
        assert await opens(taken_over.signing_link) == 200
        notice = await wait_for_subject(smtp_server, signer_of(lang), SUBJECTS[lang]["moved"])
        assert titles[lang, 1] in notice.text and substitute_of(lang).name in notice.text
        assert await opens(reminders[lang].signing_link) == 410  # as the notice says: the old link no longer works


async def test_reminders_follow_the_clock_and_stop_once_signed(
    city: System, smtp_server: SmtpServer, clock: FakeClock
) -> None:
    """Of two signers asked on Monday, the one who signed at once gets no reminder; the other gets reminders 1-3 on working days, each link works until the next replaces it, and no 4th."""
    quick, slow, submitter = signer_of("nl"), signer_of("fr"), submitter_of("en")
    title = "Omgevingsvergunning 7"
    async with Outcomes(city.amqp_url, "notula.*") as outcomes:
        await city.publish(document("REMIND-1", title, [quick, slow], submitter))
        [first] = await smtp_server.wait_for_mail(quick.email)
        await smtp_server.wait_for_mail(slow.email)
        async with httpx.AsyncClient() as browser:
            assert (await follow_link(browser, first.signing_link)).status_code == 200

        clock.move_to(datetime(2026, 3, 5, 9, 59, tzinfo=BRUSSELS))  # Thursday, a minute too early
        await asyncio.sleep(1.0)
        assert len(mails_to(smtp_server, slow)) == 1
        moments = [
            datetime(2026, 3, 5, 10, 1, tzinfo=BRUSSELS),  # Thursday: 3 working days
            datetime(2026, 3, 9, 10, 5, tzinfo=BRUSSELS),  # Monday: 2 working days later
            datetime(2026, 3, 11, 10, 9, tzinfo=BRUSSELS),  # Wednesday
        ]
        reminders = []
        for number, moment in enumerate(moments, start=1):
            clock.move_to(moment)
            [*_, reminder] = await smtp_server.wait_for_mail(slow.email, count=1 + number)
            assert reminder.subject == SUBJECTS["fr"]["reminder"].format(title)
            assert f"Ceci est le rappel n° {number}." in reminder.text
            assert await opens(reminder.signing_link) == 200
            reminders.append(reminder)
        clock.move_to(datetime(2026, 3, 20, 10, 0, tzinfo=BRUSSELS))  # well past a 4th reminder's time
        await asyncio.sleep(1.0)
        # Each reminder's link replaced the one before: only the latest mail's link still works.
        earlier = [mails_to(smtp_server, slow)[0], *reminders[:-1]]
        assert [await opens(m.signing_link) for m in earlier] == [410] * len(earlier)
        async with httpx.AsyncClient() as browser:
            assert (await follow_link(browser, reminders[-1].signing_link)).status_code == 200
        await outcomes.wait("notula.completed", "REMIND-1")
        await wait_for_subject(smtp_server, submitter, SUBJECTS["en"]["completed"].format(title))

    assert [m.subject for m in mails_to(smtp_server, quick)] == [SUBJECTS["nl"]["request"].format(title)]
    assert len(mails_to(smtp_server, slow)) == 4  # the request and three reminders


@pytest.fixture
async def processes(
    request: pytest.FixtureRequest, tmp_path: Path, database_url: str, amqp_url: str, smtp_server: SmtpServer, secrets_dir: str
) -> AsyncIterator[System]:
    """All five services as processes; mail retried every 0.2-0.5 s so an outage passes quickly."""
    system = await make_system(
        request, tmp_path, database_url, amqp_url, smtp_server, secrets_dir,
        PARAAF_MAIL_RETRY_SECONDS="0.2", PARAAF_MAIL_RETRY_MAX_SECONDS="0.5", PARAAF_MAIL_MAX_ATTEMPTS="1000",
    )
    await system.start()
    yield system
    assert all(code == 0 for code in system.stop().values()), "a service did not stop cleanly"


async def test_documents_flow_through_an_smtp_outage_and_the_mails_follow_once(
    processes: System, smtp_server: SmtpServer, database_url: str
) -> None:
    """While SMTP answers 421 to every attempt, a document is signed by link and completed and another accepted; once SMTP is back each held mail arrives exactly once."""
    signer, other, submitter = signer_of("nl"), signer_of("fr"), submitter_of("nl")
    async with Outcomes(processes.amqp_url, "notula.*") as outcomes:
        await processes.publish(document("OUT-1", "Besluit tijdens storing", [signer], submitter))
        [asked] = await smtp_server.wait_for_mail(signer.email)

        smtp_server.fail_next(1_000_000)  # down from here on
        async with httpx.AsyncClient() as browser:
            assert (await follow_link(browser, asked.signing_link)).status_code == 200
        completed = await outcomes.wait("notula.completed", "OUT-1")
        assert base64.b64decode(completed["pdf"]).startswith(b"%PDF")
        await processes.publish(document("OUT-2", "Tweede besluit", [other], submitter))
        await outcomes.wait("notula.accepted", "OUT-2")
        deadline = asyncio.get_running_loop().time() + 30
        while smtp_server.attempts < 6:  # the held mails were each tried more than once
            assert asyncio.get_running_loop().time() < deadline, "the sender stopped trying"
            await asyncio.sleep(0.1)
        assert len(smtp_server.received) == 1, "nothing got through while the server was down"

        smtp_server.fail_next(0)  # back
        await wait_for_subject(smtp_server, submitter, "Ondertekend: Besluit tijdens storing")
        [second] = await smtp_server.wait_for_mail(other.email)
        async with httpx.AsyncClient() as browser:
            assert (await follow_link(browser, second.signing_link)).status_code == 200
        await outcomes.wait("notula.completed", "OUT-2")
        await wait_for_subject(smtp_server, submitter, "Ondertekend: Tweede besluit")

    await asyncio.sleep(1.0)
    delivered = [(m.to, m.subject) for m in smtp_server.received]
    assert len(delivered) == 4 and len(set(delivered)) == 4, delivered
    told = await wait_for_audit(database_url, "notification.sent", count=4)
    assert sorted((e["recipient"], e["subject"]) for e in told) == sorted((to[0], subject) for to, subject in delivered)


async def test_a_refused_address_is_reported_in_the_audit_log_and_the_flow_goes_on(
    processes: System, smtp_server: SmtpServer, database_url: str
) -> None:
    """SMTP refuses one of two 'any' signers with 550: notification.failed lands in the audit log, the other signs, the document completes."""
    reachable, unknown, submitter = signer_of("nl"), signer_of("en"), submitter_of("fr")
    smtp_server.refuse(unknown.email)
    async with Outcomes(processes.amqp_url, "notula.*") as outcomes:
        await processes.publish(document("REFUSED-1", "Besluit 9", [reachable, unknown], submitter, mode="any"))
        [failed] = await wait_for_audit(database_url, "notification.failed")
        [asked] = await smtp_server.wait_for_mail(reachable.email)
        async with httpx.AsyncClient() as browser:
            assert (await follow_link(browser, asked.signing_link)).status_code == 200
        completed = await outcomes.wait("notula.completed", "REFUSED-1")
        await wait_for_subject(smtp_server, submitter, "Signé : Besluit 9")

    assert failed["recipient"] == unknown.email and "550" in failed["reason"]
    assert UUID(failed["correlation_id"]) == UUID(completed["document_id"])
    assert mails_to(smtp_server, unknown) == []
