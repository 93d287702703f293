"""Incidents on one running demo city (every service its own process, a real SMTP server and time-stamping service):
each kind is made to happen as it happens in a city — an SMTP server refusing a recipient, a time-stamping service
that is down, a poison message, a document past its stuck time — `paraaf incidents` lists it, the operator fixes it
the way she would (from the shell, or on the portal's incidents page), the document completes, the incident leaves
the list, and the trail or the audit log names the operator."""

import getpass
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from uuid import uuid4

import asyncpg
import httpx
import pytest

from shared.contract import WithdrawDocument
from shared.credentials import read_identity
from shared.topology import COMMANDS
from tests.conftest import Infra, city_on_fresh_install
from tests.support.bus import publish_raw_as
from tests.support.pdfs import make_pdf
from tests.support.portal import csrf_on, sign_in_by_mail
from tests.support.smtp import Received, SmtpServer
from tests.support.system import Outcomes, System, follow_link, submission
from tests.support.tsa import TimestampAuthority
from tests.support.waiting import cli, eventually
from tests.support.workbook import CITY, city_with, write

pytestmark = pytest.mark.e2e
DOMAIN = "demo.paraaf.be"


@pytest.fixture(scope="module")
async def city(infra: Infra, secrets_dir: str, tsa: TimestampAuthority) -> AsyncIterator[System]:
    async with city_on_fresh_install(infra, secrets_dir, "incidents", PARAAF_TSA_URL=tsa.url) as system:
        yield system


async def incidents(system: System) -> dict[str, dict[str, Any]]:
    return {i["id"]: i for i in json.loads((await cli(system, "incidents", "--json")).stdout)}


async def incident_about(system: System, kind: str, document_id: str | None = None) -> dict[str, Any] | None:
    return next((i for i in (await incidents(system)).values()
                 if i["kind"] == kind and (document_id is None or i["document_id"] == document_id)), None)


async def _listed(system: System, incident: str) -> dict[str, Any] | None:
    return (await incidents(system)).get(incident)


async def gone(system: System, incident: str) -> bool:
    return incident not in await incidents(system)


async def mail_about(smtp: SmtpServer, to: str, title: str) -> Received:
    async def find() -> Received | None:
        return next((m for m in smtp.received_by(to) if title in m.subject), None)

    return await eventually(find, f"a mail to {to} about {title}")


async def submitted(system: System, outcomes: Outcomes, ref: str, title: str, person: str) -> str:
    """The document's id, from the `accepted` outcome its source receives (the router asked its signer by then)."""
    await system.publish(one_signer(ref, title, person))
    return (await outcomes.wait("notula.accepted", ref))["document_id"]


def one_signer(ref: str, title: str, person: str) -> dict[str, Any]:
    return submission(make_pdf(), external_ref=ref, title=title, flow=None, steps=[{"action": "sign", "signers": [f"person:{person}"]}])


async def trail(system: System, ref: str) -> list[dict[str, Any]]:
    return json.loads((await cli(system, "trail", f"notula/{ref}", "--json")).stdout)["steps"]


async def test_a_refused_address_mended_in_the_directory_gets_the_mail_again_and_the_document_completes(
    city: System, tmp_path: Path
) -> None:
    """SMTP refuses Karel's address: the failed mail is listed with `paraaf document resend` as its fix; the operator
    mends the address with `paraaf directory import` and resends; Karel signs from the mail at his new address, the
    document completes, the incident leaves the list, and the trail says who resent it to which address."""
    smtp: SmtpServer = city.smtp  # type: ignore[attr-defined]
    old, new = f"karel.claes@{DOMAIN}", f"karel.claes@nieuw.{DOMAIN}"
    smtp.refuse(old)
    async with Outcomes(city.amqp_url, "notula.*") as outcomes:
        await city.publish(one_signer("INC-MAIL", "Besluit adres", "karel.claes"))
        incident = await eventually(lambda: incident_about(city, "mail"), "the refused mail listed")
        assert old in incident["cause"] and "550" in incident["cause"], incident
        assert f"paraaf document resend {incident['request_id']}" in incident["fix"]
        mended = city_with()
        mended["people"] = [[*row[:2], new, *row[3:]] if row[0] == "karel.claes" else row for row in CITY["people"]]
        await cli(city, "directory", "import", str(write(tmp_path / "city.xlsx", mended)))
        resent = await cli(city, "document", "resend", incident["request_id"], "--reason", "adres verbeterd")
        assert "karel.claes" in resent.stdout
        async with httpx.AsyncClient() as browser:
            signed = await follow_link(browser, (await mail_about(smtp, new, "Besluit adres")).signing_link)
        assert signed.status_code == 200
        await outcomes.wait("notula.completed", "INC-MAIL", timeout=60)
    steps = await trail(city, "INC-MAIL")
    [resend] = [s for s in steps if s["event"] == "signature.mail-resent"]
    assert f"by operator:{getpass.getuser()}@" in resend["what"] and new in resend["what"] and "adres verbeterd" in resend["what"]
    keys = [s["event"] for s in steps]
    assert keys.index("notification.failed") < keys.index("signature.mail-resent") < keys.index("signature.signed")
    again = await cli(city, "document", "resend", incident["request_id"], "--reason", "nog eens", check=False)
    assert again.returncode == 1 and "No waiting request" in again.stderr
    mail_id = re.search(r"paraaf dlq drop notifier\.events (\S+)", incident["fix"]).group(1)  # type: ignore[union-attr]
    await cli(city, "dlq", "drop", "notifier.events", mail_id, "--reason", "opnieuw verstuurd naar het nieuwe adres")

    async def both_gone() -> bool:
        return not {incident["id"], "dead_letters:notifier.events.dlq"} & set(await incidents(city))

    await eventually(both_gone, "the mail incident and its undelivered copy off the list")


async def test_a_time_stamping_service_that_is_down_is_an_incident_until_the_signature_succeeds(
    city: System, tsa: TimestampAuthority
) -> None:
    """With PARAAF_TSA_URL down, Sign answers 503 and nothing is signed: `paraaf incidents` lists a `timestamp`
    incident naming the TSA; once the TSA answers again the same link signs, the document completes, and the
    incident is gone."""
    smtp: SmtpServer = city.smtp  # type: ignore[attr-defined]
    await tsa.stop()
    try:
        await city.publish(one_signer("INC-TSA", "Besluit tijdstempel", "david.dewit"))
        link = (await mail_about(smtp, f"david.dewit@{DOMAIN}", "Besluit tijdstempel")).signing_link
        async with httpx.AsyncClient() as browser:
            assert (await follow_link(browser, link)).status_code == 503
        incident = await eventually(lambda: incident_about(city, "timestamp"), "the failed timestamp listed")
        assert tsa.url in incident["cause"] and "Sign again" in incident["fix"]
    finally:
        await tsa.start()
    async with Outcomes(city.amqp_url, "notula.*") as outcomes, httpx.AsyncClient() as browser:
        assert (await follow_link(browser, link)).status_code == 200
        await outcomes.wait("notula.completed", "INC-TSA", timeout=60)
    await eventually(lambda: gone(city, incident["id"]), "the timestamp incident off the list")
    assert [s["event"] for s in await trail(city, "INC-TSA")].count("timestamp.failed") == 1


async def test_a_poison_message_is_an_incident_until_an_operator_drops_it_and_the_audit_log_names_her(city: System) -> None:
    """A malformed withdraw command (a signer with a bug) is parked in router.events.dlq; `paraaf incidents` lists
    the queue; `paraaf dlq drop` with a reason empties it, the incident leaves, and the drop is audited with her name."""
    message_id = str(uuid4())
    await publish_raw_as(city.settings, "signer", COMMANDS.name, WithdrawDocument.routing_key, b'{"withdrawn_by": 42}',
                         message_id=message_id)
    incident = await eventually(lambda: _listed(city, "dead_letters:router.events.dlq"), "the poison listed")
    assert "paraaf dlq show router.events" in incident["fix"]
    await cli(city, "dlq", "drop", "router.events", message_id, "--reason", "kapot bericht van de signer")
    await eventually(lambda: gone(city, incident["id"]), "the poison's queue off the list")
    [dropped] = [e for e in await city.audit_events("dead_letter.dropped") if e["message_id"] == message_id]
    assert dropped["dropped_by"].startswith(f"operator:{getpass.getuser()}@") and dropped["reason"] == "kapot bericht van de signer"


async def test_a_message_that_failed_until_its_cause_was_fixed_is_replayed_and_its_document_completes(city: System) -> None:
    """The router's database role lost INSERT on its instances (a hand-made change gone wrong): the submission fails
    on every delivery and lands in router.events.dlq with the error; `paraaf incidents` lists the queue; once the
    grant is back, `paraaf dlq replay router.events` hands it over again, the signer signs, the document completes,
    the incident leaves the list, and the document's trail says who replayed it and why it had failed."""
    smtp: SmtpServer = city.smtp  # type: ignore[attr-defined]
    assert await gone(city, "dead_letters:router.events.dlq"), "the queue holds nothing yet: what is listed is this test's"
    role = urlsplit(read_identity(city.settings, "router", needs=("database_url",)).database_url).username
    admin = await asyncpg.connect(city.env["PARAAF_DATABASE_URL"])
    try:
        await admin.execute(f'REVOKE INSERT ON router.instances FROM "{role}"')
        async with Outcomes(city.amqp_url, "notula.*") as outcomes:
            await city.publish(one_signer("INC-REPLAY", "Besluit na herstel", "sofie.smet"))
            incident = await eventually(lambda: _listed(city, "dead_letters:router.events.dlq"), "the failed submission listed")
            assert "paraaf dlq replay" in incident["fix"]
            iris = await sign_in_by_mail(city.public_url, smtp, f"iris.ilegems@{DOMAIN}")
            try:  # the operators' page lists the queue too, with the command that fixes it
                page = (await iris.get("/p/ops/incidents")).text
            finally:
                await iris.aclose()
            assert 'data-incident="dead_letters:router.events.dlq"' in page and "paraaf dlq show router.events" in page
            await admin.execute(f'GRANT INSERT ON router.instances TO "{role}"')  # the cause, fixed
            replayed = json.loads((await cli(city, "dlq", "replay", "router.events")).stdout)
            assert replayed["replayed"] == 1, replayed
            mail = await mail_about(smtp, f"sofie.smet@{DOMAIN}", "Besluit na herstel")
            async with httpx.AsyncClient() as browser:
                assert (await follow_link(browser, mail.signing_link)).status_code == 200
            await outcomes.wait("notula.completed", "INC-REPLAY", timeout=60)
    finally:
        await admin.execute(f'GRANT INSERT ON router.instances TO "{role}"')
        await admin.close()
    await eventually(lambda: gone(city, incident["id"]), "the dead-letter queue off the list")
    steps = await trail(city, "INC-REPLAY")
    keys = [s["event"] for s in steps]
    assert keys.index("dead_letter.replayed") < keys.index("signature.requested") < keys.index("document.completed"), keys
    [replay] = [s for s in steps if s["event"] == "dead_letter.replayed"]
    assert f"by operator:{getpass.getuser()}@" in replay["what"] and "permission denied" in replay["what"], replay


async def _make_stuck(system: System, document_id: str) -> None:
    """Three weeks pass for this one document (the services' clock runs for every document at once)."""
    conn = await asyncpg.connect(system.env["PARAAF_DATABASE_URL"])
    try:
        await conn.execute("UPDATE router.requests SET created_at = now() - interval '21 days' WHERE document_id = $1::uuid",
                           document_id)
    finally:
        await conn.close()


async def test_a_stuck_document_reassigned_by_the_operator_completes(city: System) -> None:
    """A document waiting three weeks on Hilde is listed stuck with her request in the fix; `paraaf document reassign`
    gives it to Pieter and the incident leaves the list (his request is new); he signs from his mail, the document
    completes, and the trail names the operator who moved it."""
    smtp: SmtpServer = city.smtp  # type: ignore[attr-defined]
    async with Outcomes(city.amqp_url, "notula.*") as outcomes:
        document = await submitted(city, outcomes, "INC-STUCK", "Besluit vergeten", "hilde.hendrickx")
        await _make_stuck(city, document)
        incident = await eventually(lambda: incident_about(city, "stuck", document), "the stuck document listed")
        assert f"paraaf document reassign {incident['request_id']}" in incident["fix"]
        await cli(city, "document", "reassign", incident["request_id"], "--to", "pieter.peeters", "--reason", "Hilde is ziek")
        assert await gone(city, incident["id"]), "handled: Pieter's request is new"
        async with httpx.AsyncClient() as browser:
            link = (await mail_about(smtp, f"pieter.peeters@{DOMAIN}", "Besluit vergeten")).signing_link
            assert (await follow_link(browser, link)).status_code == 200
        await outcomes.wait("notula.completed", "INC-STUCK", timeout=60)
    [moved] = [s for s in await trail(city, "INC-STUCK") if s["event"] == "signature.reassigned"]
    assert f"reassigned by operator:{getpass.getuser()}@" in moved["what"] and "Hilde is ziek" in moved["what"]


async def test_on_the_incidents_page_an_operator_reassigns_and_dismisses_and_nobody_else_may(city: System) -> None:
    """Iris (operator) sees a stuck document on /p/ops/incidents; a form without its CSRF token changes nothing;
    she gives the request to Pieter there, who signs and the document completes (resending the moved request is refused,
    saying why); she dismisses another incident with a reason; the trail and the audit log name operator:iris.ilegems. Elen (no operator) finds no such page."""
    smtp: SmtpServer = city.smtp  # type: ignore[attr-defined]
    async with Outcomes(city.amqp_url, "notula.*") as outcomes:
        moving = await submitted(city, outcomes, "INC-WEB", "Besluit via portaal", "hilde.hendrickx")
        waiting = await submitted(city, outcomes, "INC-WEB-2", "Besluit wacht op advies", "hilde.hendrickx")
        for document in (moving, waiting):
            await _make_stuck(city, document)
        iris = await sign_in_by_mail(city.public_url, smtp, f"iris.ilegems@{DOMAIN}")
        elen = await sign_in_by_mail(city.public_url, smtp, f"elen.elaut@{DOMAIN}")
        try:
            assert (await elen.get("/p/ops/incidents")).status_code == 404
            page = await iris.get("/p/ops/incidents")
            assert page.status_code == 200 and 'id="dead-letters"' not in page.text  # the broker answered: queues listed
            listed = re.search(rf'data-incident="stuck:{moving}".*?name="request_id" value="([0-9a-f-]+)"', page.text, re.S)
            assert listed is not None, page.text
            request_id = listed.group(1)
            form = {"request_id": request_id, "to": "pieter.peeters", "reason": "Hilde is met verlof"}
            assert (await iris.post("/p/ops/incidents/reassign", data={**form, "csrf": "0" * 64})).status_code == 403
            elen_csrf = csrf_on(await elen.get("/p/to-sign"))
            assert (await elen.post("/p/ops/incidents/reassign", data={**form, "csrf": elen_csrf})).status_code == 404
            assert (await iris.post("/p/ops/incidents/reassign", data={**form, "csrf": csrf_on(page)})).status_code == 202
            async with httpx.AsyncClient() as browser:
                link = (await mail_about(smtp, f"pieter.peeters@{DOMAIN}", "Besluit via portaal")).signing_link
                assert (await follow_link(browser, link)).status_code == 200
            await outcomes.wait("notula.completed", "INC-WEB", timeout=60)
            moved_away = {"request_id": request_id, "reason": "nog eens", "csrf": csrf_on(page)}
            refused = await iris.post("/p/ops/incidents/resend", data=moved_away)
            assert refused.status_code == 409 and "reassigned" in refused.text
            dismissal = {"incident": f"stuck:{waiting}", "reason": "wacht op advies", "csrf": csrf_on(page)}
            assert (await iris.post("/p/ops/incidents/dismiss", data=dismissal)).status_code == 202

            async def off_the_page() -> bool:
                return f"stuck:{waiting}" not in (await iris.get("/p/ops/incidents")).text

            await eventually(off_the_page, "the dismissed incident off the page")
        finally:
            await iris.aclose()
            await elen.aclose()
    [moved] = [s for s in await trail(city, "INC-WEB") if s["event"] == "signature.reassigned"]
    assert "reassigned by operator:iris.ilegems: Hilde is met verlof" in moved["what"]
    [dismissed] = [e for e in await city.audit_events("incident.dismissed") if e["incident"] == f"stuck:{waiting}"]
    assert dismissed["dismissed_by"] == "operator:iris.ilegems" and dismissed["reason"] == "wacht op advies"
