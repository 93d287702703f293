"""Attacks on the portal of the running city: guessed document ids, a replayed or
expired sign-in link, a session of another org, an API key where a person is
expected, forms without their CSRF token, an absence for someone else, a
withdrawal by someone who may not. Each is refused with the right status, and
nothing changed."""

import re
import uuid
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest

from services.signer.http._portal_auth import SESSION_COOKIE
from services.signer.sessions import Sessions
from tests.security.conftest import attempted, settle
from tests.support.pdfs import hostile_pdf, make_pdf
from tests.support.portal import ask_for_sign_in_link, csrf_on, sign_in_by_mail, sign_in_link_in
from tests.support.system import Outcomes, System, submission

EMAIL = "{}@demo.paraaf.be"


async def _db(city: System) -> asyncpg.Connection:
    return await asyncpg.connect(city.env["PARAAF_DATABASE_URL"])


async def _fetchval(city: System, query: str, *args: object) -> object:
    conn = await _db(city)
    try:
        return await conn.fetchval(query, *args)
    finally:
        await conn.close()


@pytest.fixture(scope="module")
async def review(city: System) -> uuid.UUID:
    """A confidential performance review submitted for Hilde (Personeel), waiting for Pieter (HR)."""
    ref = f"REVIEW-{uuid.uuid4().hex[:8]}"
    async with Outcomes(city.amqp_url, "notula.*") as outcomes:
        body = submission(make_pdf(pages=1), external_ref=ref, title="Evaluatieverslag Geheim 2026", flow="evaluatieverslag",
                          submitted_by="hilde.hendrickx", confidential=True)
        await city.publish(body)
        accepted = await outcomes.wait("notula.accepted", ref)
    document_id = uuid.UUID(accepted["document_id"])
    for _ in range(100):
        if await _fetchval(city, "SELECT 1 FROM router.instances WHERE document_id = $1", document_id):
            return document_id
        await settle(0.1)
    raise AssertionError("the router never took the review on")


@pytest.fixture
async def karel(city: System) -> AsyncIterator[httpx.AsyncClient]:
    client = await sign_in_by_mail(city.public_url, city.smtp, EMAIL.format("karel.claes"))  # type: ignore[attr-defined]
    yield client
    await client.aclose()


@pytest.fixture
async def hilde(city: System) -> AsyncIterator[httpx.AsyncClient]:
    client = await sign_in_by_mail(city.public_url, city.smtp, EMAIL.format("hilde.hendrickx"))  # type: ignore[attr-defined]
    yield client
    await client.aclose()


async def test_a_guessed_or_forbidden_document_id_answers_exactly_like_a_missing_one(
    city: System, review: uuid.UUID, karel: httpx.AsyncClient
) -> None:
    """Karel (same department) asks for the review, and for ids that exist nowhere: the same 404 page, no title."""
    answers = {}
    for document_id in (review, uuid.uuid4(), uuid.uuid4()):
        for suffix in ("", "/document.pdf", "/document.pdf?download=1"):
            answer = await karel.get(f"/p/documents/{document_id}{suffix}")
            assert answer.status_code == 404 and "Geheim" not in answer.text, (suffix, answer.status_code)
            answers[(document_id == review, suffix)] = answer.text
    assert answers[(True, "")] == answers[(False, "")], "a forbidden document and a missing one are told apart"
    for path in (f"/p/requests/{uuid.uuid4()}", f"/p/uploads/{uuid.uuid4()}", "/p/documents/not-a-uuid"):
        assert (await karel.get(path)).status_code in (404, 422), path
    attempted("a colleague guesses the confidential review's id, and random ids", "404, the same page for both")


async def test_a_sign_in_link_works_once_and_not_after_it_expired(city: System) -> None:
    """The link from the mail signs in once; replayed it is 410 and makes no session; one past its 15 minutes is 410."""
    smtp, email = city.smtp, EMAIL.format("olga.oyen")  # type: ignore[attr-defined]
    async with httpx.AsyncClient(base_url=city.public_url) as browser:
        await ask_for_sign_in_link(browser, email)
        link = sign_in_link_in((await smtp.wait_for_mail(email))[-1].text)
        page = await browser.get(link)
        assert (await browser.post(link, data={"csrf": csrf_on(page)})).status_code == 303
    sessions = await _fetchval(city, "SELECT count(*) FROM signer.sessions")
    async with httpx.AsyncClient(base_url=city.public_url) as thief:
        page = await thief.get(link)
        replayed = await thief.post(link, data={"csrf": csrf_on(page)})
        assert replayed.status_code == 410 and SESSION_COOKIE not in replayed.cookies
        await ask_for_sign_in_link(thief, email)
        late = sign_in_link_in((await smtp.wait_for_mail(email, count=2))[-1].text)
        await _fetchval(city, "UPDATE signer.sign_in_attempts SET expires_at = now() - interval '1 second' WHERE used_at IS NULL")
        page = await thief.get(late)
        expired = await thief.post(late, data={"csrf": csrf_on(page)})
        assert expired.status_code == 410 and SESSION_COOKIE not in expired.cookies
    assert await _fetchval(city, "SELECT count(*) FROM signer.sessions") == sessions, "no session was made"
    attempted("a used sign-in link replayed, and one 15 minutes old", f"{replayed.status_code}, {expired.status_code}; no session")


async def test_asking_for_a_link_says_the_same_for_an_unknown_address_and_mails_nobody(city: System) -> None:
    mails = len(city.smtp.received)  # type: ignore[attr-defined]
    async with httpx.AsyncClient(base_url=city.public_url) as stranger:
        answer = await ask_for_sign_in_link(stranger, "nobody@elsewhere.example")
        assert answer.status_code == 303 and answer.headers["location"] == "/p/sign-in?sent=1"
    await settle()
    assert len(city.smtp.received) == mails  # type: ignore[attr-defined]


async def test_a_session_of_another_org_opens_nothing_here(city: System, review: uuid.UUID) -> None:
    """A valid session of othercity's Hilde (same name, same address) is not a session of this city."""
    conn = await _db(city)
    try:
        foreign = await Sessions(conn).start("othercity", "hilde.hendrickx", "mail", await conn.fetchval("SELECT now()"))
    finally:
        await conn.close()
    async with httpx.AsyncClient(base_url=city.public_url, cookies={SESSION_COOKIE: foreign}) as intruder:
        for path in ("/p/submitted", f"/p/documents/{review}", f"/p/documents/{review}/document.pdf"):
            answer = await intruder.get(path)
            assert answer.status_code == 303 and answer.headers["location"].startswith("/p/sign-in"), path
        posted = await intruder.post("/p/absences", data={"person": "hilde.hendrickx", "starts": "2027-01-01", "ends": "2027-01-05"})
        assert posted.status_code == 401
    attempted("othercity's session cookie on this city's portal", "303 to sign-in on every page; 401 on a form")


async def test_an_operate_key_does_not_open_a_confidential_pdf(city: System, review: uuid.UUID) -> None:
    """API keys are for systems: on the portal a key is no person, and no API serves a document's content."""
    headers = city.operator_headers("operate")
    async with httpx.AsyncClient(base_url=city.public_url, headers=headers) as script:
        pdf = await script.get(f"/p/documents/{review}/document.pdf")
        assert pdf.status_code == 303 and b"%PDF" not in pdf.content
        page = await script.get(f"/p/documents/{review}")
        assert page.status_code == 303 and "Geheim" not in page.text
    async with httpx.AsyncClient(headers=headers) as script:
        for service in ("router", "intake"):
            for path in (f"/documents/{review}", f"/documents/{review}/document.pdf"):
                assert (await script.get(city.url(service, path))).status_code in (404, 405), (service, path)
    attempted("an operate-scope key asks for the confidential review's PDF", "303 to sign-in; no API serves it")


async def test_every_portal_form_refuses_a_missing_or_foreign_csrf_token(
    city: System, review: uuid.UUID, hilde: httpx.AsyncClient, karel: httpx.AsyncClient
) -> None:
    """Each form posted without its token, or with another person's: 403, and nothing happened."""
    foreign = csrf_on(await karel.get("/p/absences"))
    before = await _counts(city)
    form_id = str(uuid.uuid4())
    posts = {
        "upload": ("/p/upload", {"form_id": form_id, "title": "Zonder token", "flow": "evaluatieverslag"}),
        "withdraw": (f"/p/documents/{review}/withdraw", {"reason": "forged"}),
        "absence": ("/p/absences", {"starts": "2027-02-01", "ends": "2027-02-03"}),
        "sign-out": ("/p/sign-out", {}),
    }
    for name, (path, data) in posts.items():
        for token in ("", foreign):
            files = {"pdf": ("x.pdf", make_pdf(pages=1), "application/pdf")} if name == "upload" else None
            answer = await hilde.post(path, data={**data, "csrf": token}, files=files)
            assert answer.status_code == 403, (name, token, answer.status_code)
    async with httpx.AsyncClient(base_url=city.public_url) as stranger:
        assert (await stranger.post("/p/sign-in", data={"email": EMAIL.format("hilde.hendrickx")})).status_code == 403
    await settle()
    assert await _counts(city) == before
    assert (await hilde.get("/p/submitted")).status_code == 200, "her session survived the forged sign-out"
    attempted("every portal form without its CSRF token, or with another person's", "403 each; nothing changed")


async def _counts(city: System) -> tuple:
    conn = await _db(city)
    try:
        return tuple(await conn.fetchrow(
            "SELECT (SELECT count(*) FROM signer.uploads), (SELECT count(*) FROM router.absences),"
            " (SELECT count(*) FROM router.instances WHERE status = 'withdrawn'), (SELECT count(*) FROM signer.sessions WHERE ended_at IS NOT NULL),"
            " (SELECT count(*) FROM signer.sign_in_attempts), (SELECT count(*) FROM signer.outbox)"
        ))
    finally:
        await conn.close()


async def _absences_starting(city: System, first: str, last: str) -> list[str]:
    """'person note' of the absences starting between two dates, once the router has recorded any (the portal's
    command travels through the broker)."""
    for _ in range(100):
        rows = await _fetchval(
            city, "SELECT array_agg(person_id || ' ' || note) FROM router.absences WHERE starts_at BETWEEN $1::text::date AND $2::text::date",
            first, last,
        )
        if rows:
            return rows  # type: ignore[return-value]
        await settle(0.1)
    return []


async def test_an_absence_for_someone_else_is_refused_but_one_for_herself_is_registered(city: System, karel: httpx.AsyncClient) -> None:
    """Karel may say when he is away, not when Hilde is; the router records his, with him as who said so."""
    page = await karel.get("/p/absences")
    refused = await karel.post("/p/absences", data={"csrf": csrf_on(page), "person": "hilde.hendrickx", "starts": "2027-03-01", "ends": "2027-03-05"})
    assert refused.status_code == 403 and "U mag geen afwezigheid registreren voor iemand anders." in refused.text
    mine = await karel.post("/p/absences", data={"csrf": csrf_on(page), "starts": "2027-03-01", "ends": "2027-03-05", "note": "verlof"})
    assert mine.status_code == 202
    assert await _absences_starting(city, "2027-02-27", "2027-03-02") == ["karel.claes verlof"]
    attempted("a person registers an absence for someone else through the portal", f"{refused.status_code}; only her own is recorded")


async def test_only_the_submitter_or_an_operator_withdraws(city: System, karel: httpx.AsyncClient) -> None:
    """Karel cannot withdraw a document of his department (he cannot even see the confidential one); its submitter can."""
    ref = f"WD-{uuid.uuid4().hex[:8]}"
    async with Outcomes(city.amqp_url, "notula.*") as outcomes:
        await city.publish(submission(make_pdf(pages=1), external_ref=ref, title="Personeelsnota 2026", flow=None,
                                      steps=[{"action": "sign", "signers": ["person:pieter.peeters"]}], submitted_by="hilde.hendrickx"))
        document_id = (await outcomes.wait("notula.accepted", ref))["document_id"]
        page = await karel.get("/p/absences")
        refused = await karel.post(f"/p/documents/{document_id}/withdraw", data={"csrf": csrf_on(page), "reason": "weg ermee"})
        assert refused.status_code in (403, 404)
        await settle()
        assert await _fetchval(city, "SELECT status FROM router.instances WHERE document_id = $1", uuid.UUID(document_id)) == "active"
        owner = await sign_in_by_mail(city.public_url, city.smtp, EMAIL.format("hilde.hendrickx"))  # type: ignore[attr-defined]
        try:
            page = await owner.get(f"/p/documents/{document_id}")
            done = await owner.post(f"/p/documents/{document_id}/withdraw", data={"csrf": csrf_on(page), "reason": "verkeerde versie"})
            assert done.status_code == 202
        finally:
            await owner.aclose()
        withdrawn = await outcomes.wait("notula.withdrawn", ref)
    assert "verkeerde versie" in (withdrawn.get("reason") or "")
    attempted("a colleague withdraws someone else's document through the portal", f"{refused.status_code}; still active")


async def test_an_operator_sees_the_review_s_trail_not_its_title_and_may_withdraw_it(city: System) -> None:
    """Iris (role operator, also admin): the confidential review's page shows its trail without its title or PDF; she
    may withdraw it (the router checks her role again), and register an absence for someone else."""
    ref = f"OPS-{uuid.uuid4().hex[:8]}"
    async with Outcomes(city.amqp_url, "notula.*") as outcomes:
        await city.publish(submission(make_pdf(pages=1), external_ref=ref, title="Evaluatieverslag Vertrouwelijk 2026",
                                      flow="evaluatieverslag", submitted_by="hilde.hendrickx", confidential=True))
        document_id = (await outcomes.wait("notula.accepted", ref))["document_id"]
        for _ in range(100):
            if await _fetchval(city, "SELECT 1 FROM router.requests WHERE document_id = $1", uuid.UUID(document_id)):
                break
            await settle(0.1)
        iris = await sign_in_by_mail(city.public_url, city.smtp, EMAIL.format("iris.ilegems"))  # type: ignore[attr-defined]
        try:
            page = await iris.get(f"/p/documents/{document_id}")
            assert page.status_code == 200 and "Vertrouwelijk 2026" not in page.text and "Pieter Peeters" in page.text
            assert (await iris.get(f"/p/documents/{document_id}/document.pdf")).status_code == 404
            done = await iris.post(f"/p/documents/{document_id}/withdraw", data={"csrf": csrf_on(page), "reason": "dubbel"})
            assert done.status_code == 202
            absences = await iris.get("/p/absences")
            registered = await iris.post("/p/absences", data={"csrf": csrf_on(absences), "person": "karel.claes",
                                                               "starts": "2027-04-01", "ends": "2027-04-02"})
            assert registered.status_code == 202 and "Karel Claes" in registered.text
        finally:
            await iris.aclose()
        withdrawn = await outcomes.wait("notula.withdrawn", ref)
    assert withdrawn["reason"] == "withdrawn by operator:iris.ilegems: dubbel", "the person is recorded, from her session"


async def test_a_hostile_pdf_uploaded_in_the_portal_is_refused_by_intake_with_its_sentence(city: System, hilde: httpx.AsyncClient) -> None:
    """The portal's upload goes through intake like any system's: a PDF with JavaScript is refused there, and the
    status page says why, in a sentence; a file that is no PDF is refused on the form itself."""
    form = await hilde.get("/p/upload")
    csrf, form_id = csrf_on(form), re.search(r'name="form_id" value="([0-9a-f-]+)"', form.text).group(1)  # type: ignore[union-attr]
    data = {"csrf": csrf, "form_id": form_id, "title": "Nota met script", "signer_1": "pieter.peeters"}
    not_pdf = await hilde.post("/p/upload", data=data, files={"pdf": ("nota.pdf", b"<html>hello</html>", "application/pdf")})
    assert not_pdf.status_code == 422 and "Het bestand is geen PDF." in not_pdf.text
    sent = await hilde.post("/p/upload", data=data, files={"pdf": ("nota.pdf", hostile_pdf("javascript"), "application/pdf")})
    assert sent.status_code == 303 and sent.headers["location"] == f"/p/uploads/{form_id}"
    again = await hilde.post("/p/upload", data=data, files={"pdf": ("nota.pdf", hostile_pdf("javascript"), "application/pdf")})
    assert again.status_code == 303, "the same form sent twice is one upload"
    for _ in range(150):
        status = await hilde.get(sent.headers["location"])
        if 'id="refusal"' in status.text:
            break
        assert 'http-equiv="refresh"' in status.text, "while it is checked, the page refreshes itself"
        await settle(0.2)
    assert "werd niet aanvaard" in status.text and "JavaScript" in status.text, status.text[-1500:]
    assert await _fetchval(city, "SELECT count(*) FROM intake.rejections WHERE source = 'portal'") == 1
    attempted("a PDF with JavaScript uploaded through the portal", "intake refuses it; the page says why")


async def test_a_manager_registers_the_absence_of_those_who_report_to_her_and_no_one_else(city: System, hilde: httpx.AsyncClient) -> None:
    """Hilde manages Karel (sheet `people`, column `manager`): his absence she may register, Olga's not."""
    page = await hilde.get("/p/absences")
    assert 'value="karel.claes"' in page.text and 'value="olga.omgeving"' not in page.text, "the form offers whom she may"
    refused = await hilde.post("/p/absences", data={"csrf": csrf_on(page), "person": "olga.omgeving", "starts": "2027-05-03", "ends": "2027-05-04"})
    assert refused.status_code == 403
    done = await hilde.post("/p/absences", data={"csrf": csrf_on(page), "person": "karel.claes", "starts": "2027-05-03", "ends": "2027-05-04"})
    assert done.status_code == 202
    assert await _absences_starting(city, "2027-05-02", "2027-05-04") == ["karel.claes by hilde.hendrickx"]
    attempted("a manager registers absences for her report and for someone else", f"202 for her report; {refused.status_code} for the other")
