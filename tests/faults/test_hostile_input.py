"""Hostile input on esign.intake, sent as a partner system would: each message is refused with its code and a
sentence, its original is kept in intake.rejected, nothing crashes or loops, and a valid submission sent right
behind it is accepted about as fast as a valid one sent just before it (both times, and a quiet system's, are
printed). The one before is the yardstick because it meets the same load on a shared machine at the same moment; a
quiet time measured earlier does not (CI once saw 2.1 s behind a /JavaScript PDF against 0.19 s quiet: the other
worker was busy, not intake)."""

import asyncio
import base64
import json
import os
import statistics
import time
from typing import Any

import aio_pika
import pytest

from tests.faults.conftest import report
from tests.support.pdfs import HOSTILE as HOSTILE_PDFS
from tests.support.pdfs import hostile_pdf, make_pdf
from tests.support.system import Outcomes, System, submission

pytestmark = [pytest.mark.e2e, pytest.mark.faults]

# (name, what the partner sends, the code, words of the reason)
HOSTILE: list[tuple[str, dict[str, Any], str, str]] = [
    ("message of 40 MB", {"pdf": "30 MB of noise"}, "too_large", "at most 25.0 MB"),
    ("zero-byte PDF", {"pdf": ""}, "not_pdf", "not a PDF"),
    ("truncated PDF", {"pdf": base64.b64encode(make_pdf(pages=2)[:500]).decode()}, "broken_pdf", "cannot be read"),
    ("PDF with /JavaScript", {"pdf": "javascript"}, "active_content", "/JavaScript"),
    ("PDF that launches a program", {"pdf": "launch"}, "active_content", "/Launch"),
    ("PDF with an embedded file", {"pdf": "embedded_file"}, "active_content", "/EmbeddedFiles"),
    ("1 GiB of zeros in a FlateDecode stream", {"pdf": "bomb"}, "decompression_bomb", "unpack to more than 256.0 MB"),
    ("array nested 100,000 deep", {"pdf": "deep_array"}, "broken_pdf", "nested too deeply"),
    ("cross-reference loop", {"pdf": "xref_loop"}, "broken_pdf", "loop"),
    ("title is a number", {"title": 5}, "invalid_message", "field `title`"),
    ("NUL character in the title", {"title": "Besluit\x00"}, "invalid_message", "NUL character"),
    ("content_type application/pdf", {"content_type": "application/pdf"}, "invalid_content_type", "application/json"),
]


def _body(external_ref: str, changes: dict[str, Any]) -> tuple[bytes, str]:
    fields = {k: v for k, v in changes.items() if k != "content_type"}
    if fields.get("pdf") in HOSTILE_PDFS:
        fields["pdf"] = base64.b64encode(hostile_pdf(fields["pdf"])).decode()
    elif fields.get("pdf") == "30 MB of noise":  # made only when this case runs, not at collection
        fields["pdf"] = base64.b64encode(os.urandom(30 * 1_048_576)).decode()
    body = {**submission(make_pdf(), external_ref=external_ref), **fields}
    return json.dumps(body).encode(), changes.get("content_type", "application/json")


async def _accepted_after(system: System, outcomes: Outcomes, external_ref: str) -> float:
    """Seconds from publishing a valid submission to its accepted outcome."""
    return await _accepted(outcomes, external_ref, await _published(system, external_ref))


async def _published(system: System, external_ref: str) -> float:
    """Publish a valid submission; the moment it was confirmed."""
    await system.publish(submission(make_pdf(), external_ref=external_ref))
    return time.monotonic()


async def _accepted(outcomes: Outcomes, external_ref: str, published: float) -> float:
    """Seconds from ``published`` to the accepted outcome of ``external_ref``."""
    await outcomes.wait("notula.accepted", external_ref, timeout=60)
    return outcomes.arrival("notula.accepted", external_ref=external_ref) - published


@pytest.fixture
async def quiet(city: System, request: pytest.FixtureRequest) -> float:
    """How long a valid submission takes to be accepted with nothing else going on, measured just before the
    test (median of three), so both times see the same load on a shared machine."""
    async with Outcomes(city.amqp_url, "notula.*") as outcomes:
        times = [await _accepted_after(city, outcomes, f"QUIET-{request.node.name}-{i}") for i in range(3)]
    return statistics.median(times)


async def _kept_original(amqp_url: str, code: str, body: bytes, timeout: float = 10.0) -> bool:
    """Whether intake.rejected holds ``body`` with ``code`` (published with the outcome, so it may arrive just after)."""
    deadline = time.monotonic() + timeout
    while not (found := await _held_in_rejected(amqp_url, code, body)) and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    return found


async def _held_in_rejected(amqp_url: str, code: str, body: bytes) -> bool:
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue("intake.rejected", passive=True)
        held = []
        while (message := await queue.get(fail=False, no_ack=False)) is not None:
            held.append(message)
        found = any((m.headers or {}).get("x-paraaf-code") == code and m.body == body for m in held)
        for message in held:
            await message.nack(requeue=True)
        return found


@pytest.mark.parametrize(("name", "changes", "code", "words"), HOSTILE, ids=[h[0] for h in HOSTILE])
async def test_hostile_input_is_refused_and_what_follows_is_not_held_up(
    city: System, quiet: float, name: str, changes: dict[str, Any], code: str, words: str
) -> None:
    """The hostile message gets a rejected outcome with its code and reason and is kept byte for byte; the valid
    submission published right behind it is accepted within a second of the one published right before it."""
    ref = f"HOSTILE-{HOSTILE.index((name, changes, code, words))}"
    body, content_type = _body(ref, changes)
    async with Outcomes(city.amqp_url, "notula.*") as outcomes:
        before_published = await _published(city, f"BEFORE-{ref}")
        await city.publish(body, content_type=content_type)
        behind_published = await _published(city, f"BEHIND-{ref}")
        before, behind = await asyncio.gather(
            _accepted(outcomes, f"BEFORE-{ref}", before_published), _accepted(outcomes, f"BEHIND-{ref}", behind_published)
        )
        rejected = await outcomes.wait("notula.rejected", ref, timeout=60)
        await asyncio.sleep(0.5)  # a second answer to the one message would come right behind the first
        answers = outcomes.bodies("notula.rejected", external_ref=ref) + outcomes.bodies("notula.accepted", external_ref=ref)
    report(
        f"- {name}: {rejected['code']} ({rejected['reason'][:110]}); valid one behind it {behind:.2f} s, "
        f"one just before it {before:.2f} s, quiet {quiet:.2f} s"
    )
    assert rejected["code"] == code and words in rejected["reason"], rejected
    assert len(answers) == 1, f"the hostile message was answered {len(answers)} times: {answers}"
    assert await _kept_original(city.amqp_url, code, body)
    # Not held up: no wait behind the hostile one's checks or retries (a retry alone waits 0.2 s, then 0.4, 0.8, ...).
    # A 40 MB message still costs intake the reading and parsing of 40 MB on the one event loop before it can refuse
    # it, which on a 2-core machine running the suite in parallel took 1.2 s (seen in CI): that case gets 3 s.
    allowance = 3.0 if name == "message of 40 MB" else 1.0
    assert behind <= before + allowance, f"the valid submission behind waited {behind:.2f} s, the one before it {before:.2f} s"


async def test_a_200_mb_message_is_refused_by_the_broker_before_paraaf_holds_it(city: System, quiet: float) -> None:
    """The broker's max_message_size (48 MiB, deploy/ensure-infra.sh) refuses a 200 MB publish to the publisher
    itself; intake never sees it, and the next submission is accepted as fast as one sent just before it."""
    huge = b'{"source": "notula", "pdf": "' + b"A" * (200 * 1_048_576) + b'"}'
    async with Outcomes(city.amqp_url, "notula.*") as outcomes:
        before_published = await _published(city, "BEFORE-200MB")
        with pytest.raises((aio_pika.exceptions.ChannelClosed, aio_pika.exceptions.ConnectionClosed)) as refused:
            await city.publish(huge)
        del huge
        behind_published = await _published(city, "BEHIND-200MB")
        before, behind = await asyncio.gather(
            _accepted(outcomes, "BEFORE-200MB", before_published), _accepted(outcomes, "BEHIND-200MB", behind_published)
        )
    report(
        f"- message of 200 MB: refused by RabbitMQ ({str(refused.value)[:90]}); valid one after {behind:.2f} s, "
        f"one just before it {before:.2f} s, quiet {quiet:.2f} s"
    )
    assert "max" in str(refused.value).lower() or "size" in str(refused.value).lower(), refused.value
    assert behind <= before + 1.0, f"the valid submission after waited {behind:.2f} s, the one before it {before:.2f} s"
