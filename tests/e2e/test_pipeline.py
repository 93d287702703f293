"""The whole pipeline, each service its own OS process, on real RabbitMQ,
PostgreSQL and SMTP: what an integrating system and two signers see. The city runs
scaled out (router ×2, signer ×3, notifier ×2, audit ×2, tests/support/system.py
SCALED): after the module, no step was opened twice, no document ended twice, no
request was signed or mailed twice, and the audit chain verifies.

The tests share one running city (starting one costs seconds): each submits its own document, with its own title and
external_ref, and finds its mails by that title and its outcomes by that ref, so each passes alone and in any order."""

import asyncio
import base64
import json
from collections.abc import AsyncIterator

import aio_pika
import asyncpg
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from shared.topology import TOPOLOGY
from tests.conftest import Infra, city_on_fresh_install
from tests.support.invariants import assert_each_effect_once
from tests.support.listener import Listener
from tests.support.pdfs import make_encrypted_pdf, make_pdf
from tests.support.smtp import SmtpServer
from tests.support.system import SCALED, SERVICES, Outcomes, System, follow_link, submission
from tests.support.validate import pdfsig, pyhanko_validate

pytestmark = pytest.mark.e2e
ANN, BART = "ann.aerts@demo.paraaf.be", "bart.baert@demo.paraaf.be"


@pytest.fixture(scope="module")
async def system(infra: Infra, secrets_dir: str) -> AsyncIterator[System]:
    async with city_on_fresh_install(infra, secrets_dir, "pipeline", scale=SCALED, PARAAF_MAX_PDF_MB="0.05") as system:
        yield system
        await assert_each_effect_once(system)


@pytest.fixture
def smtp_server(system: System) -> SmtpServer:
    """The city's SMTP server, shared by the module's tests: find a test's mails by its document's title."""
    return system.smtp  # type: ignore[attr-defined]


async def test_two_signers_sign_and_the_source_gets_a_pdf_both_validators_accept(
    system: System, smtp_server: SmtpServer
) -> None:
    """A 2-signer document goes in on the queue; both sign by their emailed link; the completed outcome's PDF carries 2 valid, trusted signatures."""
    async with Outcomes(system.amqp_url, "notula.*") as outcomes:
        await system.publish(submission(make_pdf(pages=2)))
        accepted = await outcomes.wait("notula.accepted", "BESL-2026-0042")
        async with httpx.AsyncClient() as director, httpx.AsyncClient() as mayor:
            first = (await smtp_server.wait_for_mail(ANN, about="Collegebesluit 42"))[0]
            assert "Collegebesluit 42" in first.subject
            assert (await follow_link(director, first.signing_link)).status_code == 200
            second = (await smtp_server.wait_for_mail(BART, about="Collegebesluit 42"))[0]
            assert (await follow_link(mayor, second.signing_link)).status_code == 200
        completed = await outcomes.wait("notula.completed", "BESL-2026-0042")

    assert completed["document_id"] == accepted["document_id"]
    assert [s["signer"]["name"] for s in completed["signatures"]] == ["Ann Aerts", "Bart Baert"]
    signed_pdf = base64.b64decode(completed["pdf"])
    root = await system.root_certificate()
    reports = await pyhanko_validate(signed_pdf, root)
    assert [r.signer for r in reports] == ["Ann Aerts", "Bart Baert"]
    assert all(r.intact and r.valid and r.trusted for r in reports), reports
    poppler = pdfsig(signed_pdf, root)
    assert [r.signer for r in poppler] == ["Ann Aerts", "Bart Baert"]
    assert all(r.signature_valid and r.certificate_trusted for r in poppler), [r.raw for r in poppler]


async def _sign_one_document(system: System, smtp_server: SmtpServer, ref: str, title: str) -> str:
    """The completed document's id."""
    async with Outcomes(system.amqp_url, "notula.*") as outcomes:
        await system.publish(submission(make_pdf(), external_ref=ref, title=title))
        async with httpx.AsyncClient() as director, httpx.AsyncClient() as mayor:
            first = (await smtp_server.wait_for_mail(ANN, about=title))[0]
            assert (await follow_link(director, first.signing_link)).status_code == 200
            second = (await smtp_server.wait_for_mail(BART, about=title))[0]
            assert (await follow_link(mayor, second.signing_link)).status_code == 200
        return (await outcomes.wait("notula.completed", ref))["document_id"]


Metrics = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def _metrics(client: httpx.AsyncClient, url: str) -> Metrics:
    answer = await client.get(url)
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(answer.text)
        for sample in family.samples
    }


def _pid(metrics: Metrics) -> str:
    [pid] = [dict(labels)["pid"] for name, labels in metrics if name == "paraaf_process_info"]
    return pid


async def _all_metrics(system: System, service: str) -> Metrics:
    """The service's metrics summed over its processes: they share one port, so each scrape on a new connection
    reaches one of them (the kernel chooses), until every one answered (`paraaf_process_info` says which)."""
    seen: dict[str, Metrics] = {}
    for _ in range(300):
        async with httpx.AsyncClient() as client:  # a new connection: maybe another process
            metrics = await _metrics(client, system.url(service, "/metrics"))
        seen[_pid(metrics)] = metrics
        if len(seen) == system.scale[service]:
            break
    assert len(seen) == system.scale[service], f"{service}: {len(seen)} of its {system.scale[service]} processes answered"
    summed: Metrics = {}
    for metrics in seen.values():
        for key, value in metrics.items():
            summed[key] = summed.get(key, 0.0) + value
    return summed


def _handled(metrics: dict[tuple[str, frozenset[tuple[str, str]]], float], queue: str) -> float:
    return sum(
        value for (name, labels), value in metrics.items()
        if name == "paraaf_messages_consumed_total" and ("queue", queue) in labels and ("outcome", "handled") in labels
    )


def _value(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.get((name, frozenset(labels.items())), 0.0)


async def _counted(system: System, service: str, before: Metrics) -> Metrics:
    """The service's metrics (summed over its processes) once each of its queues counts more handled messages than
    ``before`` (audit may trail the outcome); one completed document passes through every queue but a source's
    questions and withdrawals."""
    queues = [spec.name for spec in TOPOLOGY.service(service).consumes if spec.name != "intake.requests"]
    for _ in range(100):
        metrics = await _all_metrics(system, service)
        if all(_handled(metrics, queue) > _handled(before, queue) for queue in queues):
            return metrics
        await asyncio.sleep(0.2)
    raise AssertionError(f"{service}: no more handled messages counted on {queues}")


async def test_after_a_document_completes_every_service_is_ready_and_its_metrics_count_the_work(
    system: System, smtp_server: SmtpServer
) -> None:
    """Once a 2-signer document completed, every service answers /readyz 200 and its /metrics (summed over its
    processes) count handled messages on each of its queues; the signer counts 2 more signatures, the notifier 2 more mails sent, and the
    router's open requests are the pending ones in its table, none of them this document's."""
    async with httpx.AsyncClient() as client:
        before = {service: await _all_metrics(system, service) for service in SERVICES}
        document_id = await _sign_one_document(system, smtp_server, "METRICS-1", "Besluit metingen")
        for service in SERVICES:
            ready = await client.get(system.url(service, "/readyz"))
            assert ready.status_code == 200, (service, ready.text)
            assert (await client.get(system.url(service, "/healthz"))).status_code == 200
        counted = {service: await _counted(system, service, before[service]) for service in SERVICES}
    signatures = ("paraaf_signatures_total", {"action": "sign"})
    assert _value(counted["signer"], signatures[0], **signatures[1]) - _value(before["signer"], signatures[0], **signatures[1]) >= 2
    assert _value(counted["notifier"], "paraaf_mails_sent_total") - _value(before["notifier"], "paraaf_mails_sent_total") >= 2
    conn = await asyncpg.connect(system.env["PARAAF_DATABASE_URL"])
    try:
        requests = await conn.fetchrow(
            "SELECT count(*) FILTER (WHERE status = 'pending') AS open,"
            " count(*) FILTER (WHERE document_id = $1) AS asked,"
            " count(*) FILTER (WHERE document_id = $1 AND status = 'pending') AS still_open FROM router.requests",
            document_id,
        )
    finally:
        await conn.close()
    # A gauge read from the database at scrape time: each router process says the same.
    assert counted["router"][("paraaf_open_requests", frozenset())] == requests["open"] * system.scale["router"]
    assert (requests["asked"], requests["still_open"]) == (2, 0)
    assert any(name == "paraaf_messages_published_total" and value > 0 for (name, _), value in counted["router"].items())
    assert all(("paraaf_outbox_lag_seconds", frozenset()) in metrics for metrics in counted.values())


async def _rejected_originals(amqp_url: str) -> list[aio_pika.abc.AbstractIncomingMessage]:
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue("intake.rejected", passive=True)
        kept = []
        while (message := await queue.get(fail=False, no_ack=False)) is not None:
            kept.append(message)
        for message in kept:
            await message.nack(requeue=True)
        return kept


BAD_INPUTS = [
    # (external_ref, routing key, body, code, words the reason must contain)
    ("BAD-JSON", "submit.notula", b'{"source": "notula", "external_ref": ', "invalid_json", "not valid JSON"),
    ("BAD-FIELD", "submit.notula", "without:title", "invalid_message", "missing field `title`"),
    ("BAD-NOTPDF", "submit.notula", {"pdf": base64.b64encode(b"Dit is geen PDF").decode()}, "not_pdf", "not a PDF"),
    ("BAD-ENCRYPTED", "submit.notula", {"pdf": "encrypted"}, "encrypted_pdf", "encrypted"),
    ("BAD-BROKEN", "submit.notula", {"pdf": "broken"}, "broken_pdf", "cannot be read"),
    ("BAD-LARGE", "submit.notula", {"pdf": "large"}, "too_large", "the limit is 51 KB"),
    ("BAD-FLOW", "submit.notula", {"flow": "bestaat-niet"}, "unknown_flow", "flow `bestaat-niet` does not exist"),
    ("BAD-SUBMITTER", "submit.notula", {"submitted_by": "niemand"}, "unknown_submitter", "`niemand` is not in the directory"),
]


BAD_REFS = {external_ref for external_ref, *_ in BAD_INPUTS}


def _ref_of(body: bytes) -> object:
    try:
        return json.loads(body).get("external_ref")
    except (ValueError, AttributeError):
        return None


def _bad_body(external_ref: str, spec: object) -> bytes:
    if isinstance(spec, bytes):
        return spec
    body = submission(make_pdf(), external_ref=external_ref)
    if spec == "without:title":
        del body["title"]
        return json.dumps(body).encode()
    replacements = dict(spec)  # type: ignore[call-overload]
    pdfs = {
        "encrypted": make_encrypted_pdf(),
        "broken": make_pdf()[:400] + b"\n%%EOF\n",
        "large": make_pdf(pages=1, text="x" * 60) + b"%" + b"0" * 120_000 + b"\n",
    }
    if replacements.get("pdf") in pdfs:
        replacements["pdf"] = base64.b64encode(pdfs[replacements["pdf"]]).decode()
    return json.dumps({**body, **replacements}).encode()


async def test_every_bad_input_is_answered_with_a_specific_reason_and_kept(system: System) -> None:
    """Bad JSON, a missing field, a non-PDF, an encrypted, broken or too large PDF, an unknown flow or submitter: each gets a rejected outcome saying why, and the original is kept in intake.rejected."""
    unreadable_bytes = b"\xff\xfe not even text"
    published = [_bad_body(external_ref, spec) for external_ref, _, spec, _, _ in BAD_INPUTS] + [unreadable_bytes]
    async with Outcomes(system.amqp_url) as outcomes:
        for (_, routing_key, _, _, _), body in zip(BAD_INPUTS, published[:-1], strict=True):
            await system.publish(body, routing_key)
        for external_ref, _, _, code, words in BAD_INPUTS:
            outcome = await outcomes.wait("notula.rejected", code=code)
            assert words in outcome["reason"], outcome["reason"]
            if code != "invalid_json":  # unreadable JSON has no external_ref to echo
                assert outcome["external_ref"] == external_ref
        await system.publish(unreadable_bytes)
        # Even unreadable, a message is answered to the source whose broker user published it.
        [_, unreadable] = await Listener.wait(outcomes, "notula.rejected", code="invalid_json", count=2)
        assert "not valid JSON" in unreadable["reason"]
    # Other tests' refusals share the queue: this test's are what it published byte for byte, or carry its refs
    # (a refusal after acceptance, an unknown flow or submitter, keeps the submission as intake rebuilds it).
    kept = [m for m in await _rejected_originals(system.amqp_url) if m.body in published or _ref_of(m.body) in BAD_REFS]
    assert len(kept) == len(BAD_INPUTS) + 1
    reasons = {m.headers["x-paraaf-code"] for m in kept}
    assert reasons == {code for *_, code, _ in BAD_INPUTS}
    assert any(m.body == BAD_INPUTS[0][2] for m in kept), "the unreadable original is kept byte for byte"


async def test_submitting_the_same_reference_twice_yields_one_document(system: System, smtp_server: SmtpServer) -> None:
    """The same (source, external_ref) sent twice is one document: one accepted outcome, one request mail."""
    pdf, title = make_pdf(), "Besluit twee keer"
    async with Outcomes(system.amqp_url, "notula.*") as outcomes:
        await system.publish(submission(pdf, external_ref="DUP-1", title=title))
        await system.publish(submission(pdf, external_ref="DUP-1", title=title))
        await outcomes.wait("notula.accepted", "DUP-1")
        await smtp_server.wait_for_mail(ANN, about=title)
        await system.publish(submission(make_pdf(text="another document"), external_ref="DUP-1", title=title))
        conflict = await outcomes.wait("notula.rejected", "DUP-1")
    assert conflict["code"] == "duplicate_ref"
    assert [k for k, b in outcomes.received if b.get("external_ref") == "DUP-1"].count("notula.accepted") == 1
    assert len(smtp_server.received_by(ANN, about=title)) == 1


async def test_a_withdrawn_document_tells_its_source_and_its_links_stop_working(system: System, smtp_server: SmtpServer) -> None:
    """An operator's key withdraws a waiting document: the source gets `withdrawn`, the signer's link answers 410; without a key nobody may."""
    async with Outcomes(system.amqp_url, "notula.*") as outcomes, httpx.AsyncClient() as client:
        await system.publish(submission(make_pdf(), external_ref="WITHDRAW-1", title="Besluit ingetrokken"))
        accepted = await outcomes.wait("notula.accepted", "WITHDRAW-1")
        [mail] = await smtp_server.wait_for_mail(ANN, about="Besluit ingetrokken")
        withdraw_url = system.url("router", f"/documents/{accepted['document_id']}/withdraw")
        anonymous = await client.post(withdraw_url, json={"reason": "not mine"})
        assert anonymous.status_code == 401 and "Authorization: Bearer" in anonymous.json()["detail"]
        key = system.cli("keys", "create", "--name", "secretariaat", "--scopes", "operate").stdout.strip()
        done = await client.post(
            withdraw_url, json={"reason": "wrong version attached"}, headers={"Authorization": f"Bearer {key}"}
        )
        assert done.status_code == 202
        withdrawn = await outcomes.wait("notula.withdrawn", "WITHDRAW-1")
        assert withdrawn["reason"] == "withdrawn by operator:secretariaat: wrong version attached"
        page = await client.get(mail.signing_link)
        for _ in range(50):  # the signer closes the link once it has seen document.withdrawn
            if page.status_code == 410:
                break
            await asyncio.sleep(0.1)
            page = await client.get(mail.signing_link)
        assert page.status_code == 410 and 'name="csrf"' not in page.text
    again = system.cli("document", "withdraw", accepted["document_id"], "--reason", "twice", check=False)
    assert again.returncode == 1 and "already withdrawn" in again.stderr


async def test_a_decline_stops_the_flow_and_the_source_hears_why(system: System, smtp_server: SmtpServer) -> None:
    """The first signer declines with a reason: the source gets `declined` with it, and the next signer is never asked."""
    async with Outcomes(system.amqp_url, "notula.*") as outcomes, httpx.AsyncClient() as director:
        await system.publish(submission(make_pdf(), external_ref="DECLINE-1", title="Besluit geweigerd"))
        [mail] = await smtp_server.wait_for_mail(ANN, about="Besluit geweigerd")
        answer = await follow_link(director, mail.signing_link, decline_reason="Bedrag in artikel 2 klopt niet")
        assert answer.status_code == 200
        declined = await outcomes.wait("notula.declined", "DECLINE-1")
    assert declined["reason"] == "declined by Ann Aerts: Bedrag in artikel 2 klopt niet"
    assert not smtp_server.received_by(BART, about="Besluit geweigerd")


async def test_an_ad_hoc_flow_in_the_submission_is_followed(system: System, smtp_server: SmtpServer) -> None:
    """A submission carrying its own steps instead of a flow key is signed by exactly those people, in that order."""
    steps = [{"action": "sign", "signers": ["person:david.dewit"]}, {"action": "sign", "signers": ["role:schepen"]}]
    title = "Besluit eigen stappen"
    body = submission(make_pdf(), external_ref="ADHOC-1", title=title, steps=steps)
    del body["flow"]
    async with Outcomes(system.amqp_url, "notula.*") as outcomes, httpx.AsyncClient() as browser:
        await system.publish(body)
        [first] = await smtp_server.wait_for_mail("david.dewit@demo.paraaf.be", about=title)
        assert not smtp_server.received_by("sofie.smet@demo.paraaf.be", about=title), "step 2 waits for step 1"
        await follow_link(browser, first.signing_link)
        [second] = await smtp_server.wait_for_mail("sofie.smet@demo.paraaf.be", about=title)
        await follow_link(browser, second.signing_link)
        completed = await outcomes.wait("notula.completed", "ADHOC-1")
    assert [s["signer"]["id"] for s in completed["signatures"]] == ["david.dewit", "sofie.smet"]
