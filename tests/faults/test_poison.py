"""Poison on the internal event stream of a running city: malformed events published with a Paraaf service's own
credentials (as a service with a bug would) are parked in each consuming queue's dead-letter queue with why,
`paraaf dlq show` says so, `paraaf dlq drop` removes them and the audit log records who dropped what and why —
while valid documents keep being signed and completed. And every consumer runs with its prefetch."""

import asyncio
import json
import statistics
import time
from uuid import uuid4

import httpx
import pytest

from shared.events import DocumentWithdrawn
from shared.topology import EVENTS
from tests.faults.conftest import report
from tests.support.bus import consumer_prefetch, publish_raw_as
from tests.support.pdfs import make_pdf
from tests.support.system import Outcomes, System, follow_link, submission

pytestmark = [pytest.mark.e2e, pytest.mark.faults]

POISON = {"not JSON": b"\x00\xff this is no event", "JSON of another shape": b'{"document": "gone", "reason": 42}'}
CONSUMERS_OF_WITHDRAWN = ("intake.events", "signer.events", "notifier.events", "audit.events")
SIGNERS = ("ann.aerts@demo.paraaf.be", "bart.baert@demo.paraaf.be")  # the demo city's collegebesluit: two steps


async def _mail_about(city: System, to: str, title: str, timeout: float = 60.0) -> str:
    """The signing link in the mail to ``to`` about the document titled ``title`` (the city is shared: others mail too)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for mail in city.smtp.received_by(to):  # type: ignore[attr-defined]
            if title in mail.subject:
                return mail.signing_link
        await asyncio.sleep(0.2)
    raise AssertionError(f"no mail to {to} about {title!r} within {timeout} s")


async def _signed_to_completion(city: System, outcomes: Outcomes, ref: str) -> float:
    """Seconds from submitting a two-signer document to its completed outcome, both signers following their mail."""
    started, title = time.monotonic(), f"Besluit {ref}"
    await city.publish(submission(make_pdf(), external_ref=ref, title=title))
    async with httpx.AsyncClient() as browser:
        for signer in SIGNERS:
            assert (await follow_link(browser, await _mail_about(city, signer, title))).status_code == 200
    completed = await outcomes.wait("notula.completed", ref, timeout=90)
    assert len(completed["signatures"]) == 2
    return time.monotonic() - started


def _dlq(city: System, *args: str) -> dict:
    return json.loads(city.cli("dlq", *args).stdout)


async def _shown(city: System, queue: str, message_id: str, timeout: float = 30.0) -> dict:
    """`paraaf dlq show QUEUE ID`, once the dead letter is there."""
    deadline = time.monotonic() + timeout
    while (shown := city.cli("dlq", "show", queue, message_id, check=False)).returncode != 0:
        if time.monotonic() > deadline:
            raise AssertionError(f"{message_id} not in {queue}.dlq: {shown.stderr}")
        await asyncio.sleep(0.5)
    return json.loads(shown.stdout)


async def test_malformed_events_are_parked_shown_and_dropped_with_an_audit_record_while_documents_complete(city: System) -> None:
    """Malformed document.withdrawn events from the router's own user land in the dead-letter queue of each of its
    four consumers with reason `malformed`; three documents signed meanwhile complete; each dead letter dropped
    with `paraaf dlq drop` is gone and in the audit log with who dropped it, what it was and why."""
    ids = {name: str(uuid4()) for name in POISON}
    async with Outcomes(city.amqp_url, "notula.*") as outcomes:
        quiet = await _signed_to_completion(city, outcomes, "POISON-QUIET")
        for name, body in POISON.items():
            await publish_raw_as(city.settings, "router", EVENTS.name, DocumentWithdrawn.routing_key, body, message_id=ids[name])
        behind = await asyncio.gather(*(_signed_to_completion(city, outcomes, f"POISON-BEHIND-{i}") for i in range(3)))
    for queue in CONSUMERS_OF_WITHDRAWN:
        for name, message_id in ids.items():
            shown = await _shown(city, queue, message_id)
            assert shown["reason"].startswith("malformed") and not shown["replayable"], shown
            assert shown["publisher"] == f"{city.settings.broker_user_prefix}.router"
            assert shown["routing_key"] == "document.withdrawn"
            dropped = _dlq(city, "drop", queue, message_id, "--reason", f"poison test: {name}")
            assert dropped["dropped"] == message_id
            assert city.cli("dlq", "show", queue, message_id, check=False).returncode == 1
    records = await _audited_drops(city, set(ids.values()), expected=len(ids) * len(CONSUMERS_OF_WITHDRAWN))
    assert {(r["queue"], r["message_id"]) for r in records} == {(f"{q}.dlq", i) for q in CONSUMERS_OF_WITHDRAWN for i in ids.values()}
    assert all(r["dropped_by"] and r["reason"].startswith("poison test") and r["dead_lettered_because"].startswith("malformed") for r in records)
    report(
        f"- poison on esign.events ({', '.join(POISON)}): parked in {len(CONSUMERS_OF_WITHDRAWN)} dead-letter queues, "
        f"{len(records)} drops audited; 3 documents signed behind it in {statistics.median(behind):.2f} s (median), quiet {quiet:.2f} s"
    )
    assert max(behind) < quiet * 3 + 5, f"documents behind the poison took {behind}, {quiet:.2f} s on a quiet system"


async def _audited_drops(city: System, message_ids: set[str], *, expected: int, timeout: float = 30.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        records = [r for r in await city.audit_events("dead_letter.dropped") if r["message_id"] in message_ids]
        if len(records) >= expected or time.monotonic() > deadline:
            return records
        await asyncio.sleep(0.3)


async def test_every_consumer_of_the_city_runs_with_its_prefetch(city: System) -> None:
    """RabbitMQ holds each service's consumer to PARAAF_PREFETCH (16), intake.submissions to its 4 and the audit log
    to 1,000 (two batches of 500 small events: one fills while the other is written): none runs unlimited (prefetch
    0), so a backlog cannot flood a service's memory. A scaled service's processes each consume its queue."""
    each = {"intake.submissions": 4, "intake.requests": 16, "intake.events": 16, "router.events": 16, "signer.events": 16,
            "notifier.events": 16, "audit.events": 1000}
    expected = {queue: [prefetch] * city.scale[queue.partition(".")[0]] for queue, prefetch in each.items()}

    def all_there(seen: dict[str, list[int]]) -> bool:
        return all(len(seen.get(queue, [])) >= len(wanted) for queue, wanted in expected.items())

    deadline = time.monotonic() + 30
    while not all_there(seen := await consumer_prefetch(city.amqp_url)) and time.monotonic() < deadline:
        await asyncio.sleep(0.5)  # the management API lists consumers a few seconds after they start
    report(f"- prefetch per consumer: {', '.join(f'{q} {p}' for q, p in sorted(seen.items()))}")
    assert {q: seen.get(q) for q in expected} == expected
