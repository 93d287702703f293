"""`paraaf documents`, `paraaf trail` and `paraaf tail` run as an operator runs them, against one running demo
city (every service its own process): a document is listed with whom it waits on, then as completed once signed
from the mailed link; its trail reads submitted → requested → mail sent → signed → completed; a tail sees a
signature as it happens; and a confidential document's title shows in none of them."""

import asyncio
import json
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from yarl import URL

from shared.credentials import stored
from shared.names import OPERATOR
from tests.conftest import Infra, city_on_fresh_install
from tests.support.forwarder import Forwarder
from tests.support.net import free_port
from tests.support.pdfs import make_pdf
from tests.support.smtp import Received, SmtpServer
from tests.support.system import ROOT, System, follow_link, submission
from tests.support.waiting import cli, eventually

ANN, BART = "ann.aerts@demo.paraaf.be", "bart.baert@demo.paraaf.be"
SECRET_TITLE = "Evaluatie Zjef Xyzzy"


@pytest.fixture(scope="module")
async def city(infra: Infra, secrets_dir: str) -> AsyncIterator[System]:
    async with city_on_fresh_install(infra, secrets_dir, "ops-cli") as system:
        system.env["COLUMNS"] = "250"  # rich wraps tables to the terminal; a wide one keeps each row on one line
        yield system


async def listed(system: System, *args: str) -> list[dict[str, Any]]:
    return json.loads((await cli(system, "documents", *args, "--json")).stdout)


async def row(system: System, ref: str, *args: str) -> dict[str, Any] | None:
    return next((r for r in await listed(system, *args) if r["external_ref"] == ref), None)


async def submitted(system: System, ref: str, **fields: Any) -> dict[str, Any]:
    """Publish a submission as notula does; its row once the router asked its first signer."""
    await system.publish(submission(make_pdf(), external_ref=ref, **fields))
    return await eventually(lambda: _waiting(system, ref), f"{ref} waiting on someone")


async def _waiting(system: System, ref: str) -> dict[str, Any] | None:
    found = await row(system, ref, "--source", "notula", "--ref", ref)
    return found if found and found["waiting_on"] else None


async def mail_about(smtp: SmtpServer, to: str, title: str) -> Received:
    async def find() -> Received | None:
        return next((m for m in smtp.received_by(to) if title in m.subject), None)

    return await eventually(find, f"a mail to {to} about {title}")


async def sign(smtp: SmtpServer, to: str, title: str) -> None:
    async with httpx.AsyncClient() as signer:
        assert (await follow_link(signer, (await mail_about(smtp, to, title)).signing_link)).status_code == 200


async def test_a_document_is_listed_waiting_on_its_signer_then_completed_and_its_trail_tells_every_step(city: System) -> None:
    """Listed waiting on Ann Aerts; once both sign from their mails, listed completed; its trail (by SOURCE/REF or id)
    reads submitted → requested → mail sent → signed → completed in that order, in local time."""
    smtp: SmtpServer = city.smtp  # type: ignore[attr-defined]
    first = await submitted(city, "OPS-1", title="Collegebesluit ops 1")
    assert first["status"] == "waiting" and first["waiting_on"] == ["Ann Aerts"]
    assert "Ann Aerts" in (await cli(city, "documents", "--status", "waiting", "--waiting-on", "ann.aerts")).stdout
    await sign(smtp, ANN, "Collegebesluit ops 1")
    await sign(smtp, BART, "Collegebesluit ops 1")
    done = await eventually(lambda: row(city, "OPS-1", "--status", "completed"), "OPS-1 completed")
    assert done["document_id"] == first["document_id"] and done["waiting_on"] == []
    assert await row(city, "OPS-1", "--status", "waiting") is None

    trail = json.loads((await cli(city, "trail", "notula/OPS-1", "--json")).stdout)
    keys = [step["event"] for step in trail["steps"]]
    expected = ["document.submitted", "signature.requested", "notification.sent", "signature.signed", "document.completed"]
    positions = [keys.index(key) for key in expected]
    assert positions == sorted(positions), keys
    assert trail["title"] == "Collegebesluit ops 1"
    assert any("signed by Ann Aerts" in step["what"] for step in trail["steps"])
    assert "signature requested of Ann Aerts, step 1/2" in [step["what"] for step in trail["steps"]]
    printed = (await cli(city, "trail", first["document_id"])).stdout
    assert "document.completed" in printed and "signed by Bart Baert" in printed


async def test_an_unknown_document_has_no_trail_and_the_command_says_so(city: System) -> None:
    """A document id or reference nobody knows: exit 1 with a sentence naming it."""
    result = await cli(city, "trail", "00000000-0000-0000-0000-000000000042", check=False)
    assert result.returncode == 1
    assert "No document `00000000-0000-0000-0000-000000000042`" in result.stderr
    assert (await cli(city, "trail", "notula/NOPE", check=False)).returncode == 1


async def test_older_than_and_stuck_find_a_document_that_waited_too_long(city: System) -> None:
    """A document waiting on one step for two weeks is `stuck` and older than 1w; one submitted just now is neither."""
    old = await submitted(city, "OPS-OLD", title="Collegebesluit oud")
    await submitted(city, "OPS-NEW", title="Collegebesluit nieuw")
    conn = await asyncpg.connect(city.env["PARAAF_DATABASE_URL"])
    try:  # two weeks pass for this one document
        await conn.execute("UPDATE router.requests SET created_at = now() - interval '15 days' WHERE document_id = $1::uuid",
                           old["document_id"])
        await conn.execute("UPDATE router.instances SET created_at = now() - interval '15 days' WHERE document_id = $1::uuid",
                           old["document_id"])
    finally:
        await conn.close()
    assert {r["external_ref"] for r in await listed(city, "--status", "stuck")} == {"OPS-OLD"}
    assert {r["external_ref"] for r in await listed(city, "--older-than", "1w")} == {"OPS-OLD"}
    assert await listed(city, "--older-than", "3w") == []
    assert "OPS-NEW" in {r["external_ref"] for r in await listed(city, "--status", "waiting", "--older-than", "0h")}
    assert "stuck" in (await cli(city, "documents", "--ref", "OPS-OLD")).stdout
    refused = await cli(city, "documents", "--older-than", "3 days", check=False)
    assert refused.returncode == 2 and "12h, 3d, 2w" in refused.stderr
    # A row limit keeps the newest, and says so; stuck documents are old, so a limit on the newest never hides them.
    newest = await cli(city, "documents", "--limit", "1", "--json")
    assert [r["external_ref"] for r in json.loads(newest.stdout)] == ["OPS-NEW"] and "Only the newest 1" in newest.stderr
    assert [r["external_ref"] for r in await listed(city, "--status", "stuck", "--limit", "1")] == ["OPS-OLD"]
    assert await listed(city, "--org", "elders") == [] and await listed(city, "--org", "default", "--ref", "OPS-OLD")


async def stuck_document(city: System, ref: str, title: str) -> dict[str, Any]:
    """A submitted document whose first request has waited 15 days: stuck."""
    stuck = await submitted(city, ref, title=title)
    conn = await asyncpg.connect(city.env["PARAAF_DATABASE_URL"])
    try:
        await conn.execute("UPDATE router.requests SET created_at = now() - interval '15 days' WHERE document_id = $1::uuid",
                           stuck["document_id"])
    finally:
        await conn.close()
    return stuck


async def _incidents(system: System) -> dict[str, dict[str, Any]]:
    return {i["id"]: i for i in json.loads((await cli(system, "incidents", "--json")).stdout)}


async def test_a_stuck_document_is_an_incident_until_an_operator_dismisses_it_with_a_reason(city: System) -> None:
    """`paraaf incidents` lists the stuck document with its cause and the commands that fix it; dismissed with a
    reason, it leaves the list and the audit log keeps incident.dismissed naming the operator."""
    stuck = await stuck_document(city, "OPS-INCIDENT", "Collegebesluit vergeten")
    incident = f"stuck:{stuck['document_id']}"
    listed_now = await _incidents(city)
    assert incident in listed_now, list(listed_now)
    assert "working days on Ann Aerts" in listed_now[incident]["cause"] and "paraaf document reassign" in listed_now[incident]["fix"]
    unknown = await cli(city, "incidents", "dismiss", "stuck:nothing", "--reason", "x", check=False)
    assert unknown.returncode == 1 and "No open incident" in unknown.stderr
    await cli(city, "incidents", "dismiss", incident, "--reason", "Ann bevestigt: wacht op advies")
    await eventually(lambda: _gone(city, incident), f"{incident} off the list once dismissed")
    [dismissal] = await city.audit_events("incident.dismissed")
    assert (dismissal["incident"], dismissal["reason"]) == (incident, "Ann bevestigt: wacht op advies")
    assert dismissal["dismissed_by"].startswith("operator:") and dismissal["correlation_id"] == stuck["document_id"]


async def test_with_the_broker_away_incidents_lists_what_the_database_knows_and_says_what_it_left_out(city: System) -> None:
    """RabbitMQ not answering does not hide a stuck document: `paraaf incidents` lists it, and warns that dead
    letters are not listed (they live in the broker)."""
    stuck = await stuck_document(city, "OPS-NO-BROKER", "Besluit zonder broker")
    operator = URL(stored(city.settings, OPERATOR)["amqp_url"])
    nobody_there = {**city.env, "PARAAF_OPERATOR_AMQP_URL": str(operator.with_port(free_port()))}
    listed_then = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "services", "incidents", "--json"], env=nobody_there, capture_output=True,
        text=True, cwd=ROOT,
    )
    assert listed_then.returncode == 0, listed_then.stderr
    assert f"stuck:{stuck['document_id']}" in {i["id"] for i in json.loads(listed_then.stdout)}
    assert "RabbitMQ did not answer" in listed_then.stderr and "dead letters are not listed" in listed_then.stderr


async def _gone(system: System, incident: str) -> bool:
    return incident not in await _incidents(system)


class Tail:
    """`paraaf tail ARGS` as a subprocess, its output read line by line."""

    def __init__(self, system: System, *args: str, env: dict[str, str] | None = None) -> None:
        self._system, self._args, self.lines = system, args, []  # type: ignore[var-annotated]
        self._env = env or system.env

    async def __aenter__(self) -> "Tail":
        self._process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "services", "tail", *self._args, env=self._env, cwd=ROOT,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        ready = await asyncio.wait_for(self._process.stderr.readline(), 30)  # type: ignore[union-attr]
        assert b"following esign.events" in ready, ready
        return self

    async def line_with(self, *words: str, timeout: float = 30.0) -> str:
        async with asyncio.timeout(timeout):
            while not any(all(w in line for w in words) for line in self.lines):
                self.lines.append((await self._process.stdout.readline()).decode())  # type: ignore[union-attr]
        return next(line for line in self.lines if all(w in line for w in words))

    async def __aexit__(self, *exc: object) -> None:
        if self._process.returncode is None:  # not stopped by the test itself
            await self.ctrl_c()

    async def ctrl_c(self, within: float = 30.0) -> float:
        """Ctrl-C, then its output to the end; the seconds it took to exit with code 0 (the test fails otherwise)."""
        self._process.send_signal(signal.SIGINT)
        began = time.monotonic()
        ended = asyncio.ensure_future(self._process.communicate())
        try:
            rest, errors = await asyncio.wait_for(asyncio.shield(ended), within)
        except TimeoutError:
            stack = await asyncio.to_thread(
                subprocess.run, [str(Path(sys.executable).with_name("py-spy")), "dump", "--pid", str(self._process.pid)],
                capture_output=True, text=True,
            )
            self._process.kill()
            rest, errors = await ended
            raise AssertionError(
                f"paraaf tail still running {within:.0f} s after Ctrl-C; where it was:\n{stack.stdout}{stack.stderr}\n"
                f"its stderr:\n{errors.decode()}\nits output:\n{''.join(self.lines)}{rest.decode()}"
            ) from None
        self.lines += rest.decode().splitlines()
        self.returncode, self.errors = self._process.returncode, errors.decode()
        assert self.returncode == 0, self.errors
        return time.monotonic() - began


async def test_a_tail_of_signatures_prints_a_signature_made_while_it_runs_and_stops_on_ctrl_c(city: System) -> None:
    """`paraaf tail --type 'signature.*'` prints the signature.signed of a document signed while it runs, with
    the document's short id and who signed, nothing but signature events, and exits 0 on Ctrl-C."""
    smtp: SmtpServer = city.smtp  # type: ignore[attr-defined]
    async with Tail(city, "--type", "signature.*") as tail:
        document = await submitted(city, "OPS-TAIL", title="Collegebesluit tail")
        await sign(smtp, ANN, "Collegebesluit tail")
        signed = await tail.line_with("signature.signed", document["document_id"][:8])
    assert "signed by Ann Aerts" in signed
    assert all(line.split()[2].startswith("signature.") for line in tail.lines if line.strip()), tail.lines


async def test_ctrl_c_stops_a_tail_at_once_even_when_the_broker_has_stopped_answering(city: System) -> None:
    """A broker that hangs (its connection open, nothing coming back) is when an operator tails and gives up: Ctrl-C
    ends `paraaf tail` within seconds with exit code 0, instead of waiting for ever for the broker to confirm its
    consumer cancelled (its queue goes with the connection anyway: exclusive, auto-delete)."""
    operator = URL(stored(city.settings, OPERATOR)["amqp_url"])
    broker = Forwarder(operator.host or "127.0.0.1", operator.port or 5672)
    await broker.start()
    try:
        env = {**city.env, "PARAAF_OPERATOR_AMQP_URL": str(operator.with_host("127.0.0.1").with_port(broker.port))}
        async with Tail(city, "--type", "document.*", env=env) as tail:
            document = await submitted(city, "OPS-TAIL-HUNG", title="Besluit bij een hangende broker")
            await tail.line_with("document.submitted", document["document_id"][:8])  # it is following
            broker.freeze()
            took = await tail.ctrl_c(within=20)
    finally:
        await broker.stop()
    assert took < 10, f"Ctrl-C took {took:.1f} s"


async def test_a_confidential_title_shows_in_no_command(city: System) -> None:
    """A confidential document is listed, trailed and tailed (all types, its source's) as (confidential); its title
    is in none of the outputs."""
    async with Tail(city, "--source", "notula") as tail:  # every type; the source looked up per document
        document = await submitted(city, "OPS-SECRET", title=SECRET_TITLE, confidential=True)
        await tail.line_with("notification.sent", document["document_id"][:8])
    assert document["title"] == "(confidential)"
    outputs = [
        "\n".join(tail.lines),
        (await cli(city, "documents")).stdout,
        json.dumps(await listed(city)),
        (await cli(city, "trail", "notula/OPS-SECRET")).stdout,
        (await cli(city, "trail", document["document_id"], "--json")).stdout,
    ]
    assert "(confidential)" in outputs[1] and "(confidential)" in outputs[3]
    assert not [out for out in outputs if "Xyzzy" in out]
