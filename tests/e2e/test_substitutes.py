"""Substitutes and absences across the whole pipeline, in July: the demo city
imported from its .xlsx, every service its own process, the services' clock
started on 10 July 2026.

Tests that register absences start a city each (an absence changes who is asked in every later test); the ones that leave
the absences as imported share one city, `july_as_imported`."""

import asyncio
import base64
import json
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import httpx
import pytest

from tests.conftest import Infra, city_on_fresh_install
from tests.support.pdfs import make_pdf
from tests.support.smtp import SmtpServer
from tests.support.system import Outcomes, System, demo_city, follow_link, submission
from tests.support.validate import pdfsig, pyhanko_validate

pytestmark = pytest.mark.e2e

TENTH_OF_JULY = "2026-07-10T09:00:00+02:00"


@pytest.fixture
async def july(request: pytest.FixtureRequest, database_url: str, amqp_url: str, smtp_server: SmtpServer, secrets_dir: str) -> AsyncIterator[System]:
    async with demo_city(
        request.node.name, database_url=database_url, amqp_url=amqp_url, smtp=smtp_server, secrets_dir=secrets_dir, PARAAF_CLOCK_START=TENTH_OF_JULY
    ) as system:
        yield system


@pytest.fixture(scope="module")
async def july_as_imported(infra: Infra, secrets_dir: str) -> AsyncIterator[System]:
    """One city in July for the tests that register no absence (those refused leave none): its SMTP server is
    ``system.smtp``."""
    async with city_on_fresh_install(infra, secrets_dir, "substitutes-july", PARAAF_CLOCK_START=TENTH_OF_JULY) as system:
        yield system


def last_page_text(pdf: bytes) -> str:
    with tempfile.NamedTemporaryFile(suffix=".pdf") as handle:
        handle.write(pdf)
        handle.flush()
        return subprocess.run(["pdftotext", "-layout", handle.name, "-"], capture_output=True, text=True, check=True).stdout


async def test_a_collegebesluit_in_july_is_signed_by_the_first_substitute_on_behalf_of_the_mayor(
    july_as_imported: System,
) -> None:
    """The mayor is away all July: on 10 July the mayor's first substitute signs, and mail, outcome and stamp say on whose behalf."""
    july, title = july_as_imported, "Collegebesluit juli"
    smtp_server: SmtpServer = july.smtp  # type: ignore[attr-defined]
    async with Outcomes(july.amqp_url, "notula.*") as outcomes, httpx.AsyncClient() as browser:
        await july.publish(submission(make_pdf(pages=2), external_ref="BESL-JULY", title=title))
        [director_mail] = await smtp_server.wait_for_mail("ann.aerts@demo.paraaf.be", about=title)
        assert (await follow_link(browser, director_mail.signing_link)).status_code == 200
        [substitute_mail] = await smtp_server.wait_for_mail("sofie.smet@demo.paraaf.be", about=title)
        assert "vervanger van Bart Baert (burgemeester)" in substitute_mail.text
        page = await browser.get(substitute_mail.signing_link)
        assert "vervanger van Bart Baert" in page.text
        assert (await follow_link(browser, substitute_mail.signing_link)).status_code == 200
        completed = await outcomes.wait("notula.completed", "BESL-JULY")

    mayors = completed["signatures"][1]
    assert mayors["signer"]["id"] == "sofie.smet"
    assert (mayors["on_behalf_of"]["id"], mayors["on_behalf_of"]["title"]) == ("bart.baert", "burgemeester")
    assert not smtp_server.received_by("bart.baert@demo.paraaf.be"), "the absent mayor is not asked"
    signed = base64.b64decode(completed["pdf"])
    stamp = last_page_text(signed)
    assert "Sofie Smet" in stamp and "wnd. burgemeester" in stamp
    root = await july.root_certificate()
    reports = await pyhanko_validate(signed, root)
    assert [(r.signer, r.intact, r.trusted) for r in reports] == [("Ann Aerts", True, True), ("Sofie Smet", True, True)]
    assert [r.signer for r in pdfsig(signed, root) if r.signature_valid and r.certificate_trusted] == ["Ann Aerts", "Sofie Smet"]


async def test_an_absence_registered_while_a_request_waits_moves_it_and_the_old_link_is_gone(
    july: System, smtp_server: SmtpServer
) -> None:
    """The director goes on leave with a request waiting: it moves to her substitute, her link answers 410 "reassigned", and only the substitute's signature lands."""
    async with Outcomes(july.amqp_url, "notula.*") as outcomes, httpx.AsyncClient() as director, httpx.AsyncClient() as deputy:
        await july.publish(submission(make_pdf(), external_ref="BESL-LEAVE"))
        [old] = await smtp_server.wait_for_mail("ann.aerts@demo.paraaf.be")
        assert (await director.get(old.signing_link)).status_code == 200  # she opened it, then left

        added = july.cli("absence", "add", "ann.aerts", "--from", "2026-07-10", "--to", "2026-07-20")
        assert "ann.aerts away from 2026-07-10 00:00 until 2026-07-20 00:00" in added.stdout
        [moved] = await smtp_server.wait_for_mail("david.dewit@demo.paraaf.be")
        assert "Collegebesluit 42" in moved.subject

        gone = await follow_link(director, old.signing_link)
        assert gone.status_code == 410
        assert "doorgegeven aan een vervanger" in gone.text
        assert 'name="csrf"' not in gone.text, "a reassigned link never shows a signing form"
        late_post = await director.post(f"{old.signing_link}/sign", data={"csrf": "0" * 64})
        assert late_post.status_code in (403, 410)

        assert (await follow_link(deputy, moved.signing_link)).status_code == 200
        [mayors_substitute] = await smtp_server.wait_for_mail("sofie.smet@demo.paraaf.be")
        assert (await follow_link(deputy, mayors_substitute.signing_link)).status_code == 200
        completed = await outcomes.wait("notula.completed", "BESL-LEAVE")

    signers = [(s["signer"]["id"], (s["on_behalf_of"] or {}).get("id")) for s in completed["signatures"]]
    assert signers == [("david.dewit", "ann.aerts"), ("sofie.smet", "bart.baert")]
    listed = july.cli("absence", "list", "ann.aerts").stdout
    assert "ann.aerts" in listed and "yes" in listed  # applied


async def test_with_the_whole_row_away_the_mayor_keeps_the_request_and_an_operator_is_alerted(
    july: System, smtp_server: SmtpServer
) -> None:
    """Mayor and both substitutes away: the mayor is still asked (can sign from leave) and routing.unresolved is in the
    audit log; an operator moves the request to an alderman who is in (`paraaf document reassign`), the mayor's link
    stops working, the alderman signs on the mayor's behalf and the document completes."""
    for person in ("sofie.smet", "marc.maes"):
        july.cli("absence", "add", person, "--from", "2026-07-01", "--to", "2026-08-01")
    async with httpx.AsyncClient() as browser:
        await july.publish(submission(make_pdf(), external_ref="BESL-NOBODY"))
        [director_mail] = await smtp_server.wait_for_mail("ann.aerts@demo.paraaf.be")
        await follow_link(browser, director_mail.signing_link)
        [mayor_mail] = await smtp_server.wait_for_mail("bart.baert@demo.paraaf.be")
    assert "vervanger" not in mayor_mail.text
    [alert] = await july.audit_events("routing.unresolved")
    assert alert["signer"]["id"] == "bart.baert"
    assert "no substitute is available" in alert["reason"]

    # The operator sees the incident and resolves it: the request goes to an alderman who is in, for the mayor.
    incident = f"routing:{alert['request_id']}"
    [listed] = [i for i in json.loads(july.cli("incidents", "--json").stdout) if i["id"] == incident]
    assert listed["fix"].startswith(f"paraaf document reassign {alert['request_id']}")
    moved = july.cli("document", "reassign", alert["request_id"], "--to", "lies.leys", "--reason", "burgemeester en vervangers met verlof")
    assert "Reassigned to lies.leys" in moved.stdout
    [alderman_mail] = await smtp_server.wait_for_mail("lies.leys@demo.paraaf.be")
    async with httpx.AsyncClient() as browser:
        assert (await browser.get(mayor_mail.signing_link)).status_code == 410, "the mayor's link no longer works"
        assert (await follow_link(browser, alderman_mail.signing_link)).status_code == 200
    [completed] = await july.audit_events("document.completed")
    [reassigned] = await july.audit_events("signature.reassigned")
    assert reassigned["reason"].startswith("reassigned by operator:") and reassigned["reason"].endswith("met verlof")
    last = completed["signatures"][-1]
    assert (last["signer"]["id"], last["on_behalf_of"]["id"]) == ("lies.leys", "bart.baert")
    assert incident not in {i["id"] for i in json.loads(july.cli("incidents", "--json").stdout)}, "resolved: off the list"


async def test_an_absence_that_starts_later_moves_the_work_at_its_start(july: System, smtp_server: SmtpServer) -> None:
    """An absence registered to start in a few seconds leaves the request alone until then, and moves it when it starts."""
    async with httpx.AsyncClient(headers=july.operator_headers()) as client:
        await july.publish(submission(make_pdf(), external_ref="BESL-LATER"))
        await smtp_server.wait_for_mail("ann.aerts@demo.paraaf.be")
        # The services' clock began at 10 July 09:00 when they started; start the absence ~8 s from now.
        starts = datetime.fromisoformat(TENTH_OF_JULY) + timedelta(seconds=time.monotonic() - july.started_at + 8)
        response = await client.post(
            july.url("router", "/absences"),
            json={"person": "ann.aerts", "from": starts.isoformat(), "to": "2026-07-20", "note": "conference"},
        )
        assert response.status_code == 201, response.text
        await asyncio.sleep(3)
        assert not smtp_server.received_by("david.dewit@demo.paraaf.be"), "moved before the absence started"
        [moved] = await smtp_server.wait_for_mail("david.dewit@demo.paraaf.be", timeout=30)
        listed = (await client.get(july.url("router", "/absences"), params={"person": "ann.aerts"})).json()
    assert "Collegebesluit 42" in moved.subject
    assert [(a["note"], a["applied_at"] is not None) for a in listed] == [("conference", True)]


async def test_the_absence_api_says_what_is_wrong(july_as_imported: System) -> None:
    """An unknown person is 404, an unreadable date or a `to` before `from` is 422, each with a sentence."""
    july = july_as_imported
    async with httpx.AsyncClient(headers=july.operator_headers()) as client:
        unknown = await client.post(july.url("router", "/absences"), json={"person": "nobody", "from": "2026-07-01", "to": "2026-07-02"})
        bad_date = await client.post(july.url("router", "/absences"), json={"person": "ann.aerts", "from": "soon", "to": "2026-07-02"})
        backwards = await client.post(july.url("router", "/absences"), json={"person": "ann.aerts", "from": "2026-07-05", "to": "2026-07-02"})
    assert (unknown.status_code, unknown.json()["detail"]) == (404, "person `nobody` is not in the directory")
    assert bad_date.status_code == 422 and "must be dates" in bad_date.json()["detail"]
    assert backwards.status_code == 422 and "first moment back" in backwards.json()["detail"]
