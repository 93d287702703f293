"""Crashes while documents flow: the five services as processes (several of four of them) on the real RabbitMQ and PostgreSQL, documents of
2 and 3 signature steps in flight, and a signer who follows every mailed link. Meanwhile each service is killed
with SIGKILL and started again, RabbitMQ closes the services' connections, PostgreSQL terminates their backends
(and, when PARAAF_FAULTS_RESTART_BROKER=1, RabbitMQ itself is stopped and started once). Afterwards every document
completed exactly once with one valid signature per signer, the audit chain is intact with each event once, no
dead letter and no outbox row is left behind. The numbers go into the report printed at the end of the run.

PARAAF_FAULTS_DOCUMENTS (default 100) and PARAAF_FAULTS_SEED (default random, printed) change the run."""

import asyncio
import base64
import os
import random
import statistics
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import asyncpg
import pytest

from services.admin.database import SERVICES
from shared import amqp
from shared.topology import TOPOLOGY
from tests.conftest import Infra, city_on_fresh_install
from tests.faults.conftest import report
from tests.support.autosigner import AutoSigner
from tests.support.faults import Faults, SourceInbox, ensure_broker_running, restart_broker_app
from tests.support.invariants import assert_each_effect_once
from tests.support.pdfs import make_pdf
from tests.support.system import SCALED, System, submission
from tests.support.validate import PdfsigReport, pdfsig_all, pyhanko_validate

pytestmark = [pytest.mark.e2e, pytest.mark.faults]

DOCUMENTS = int(os.environ.get("PARAAF_FAULTS_DOCUMENTS", "100"))
SEED = int(os.environ.get("PARAAF_FAULTS_SEED") or random.randrange(1 << 31))
KILLS_PER_SERVICE = 3
BROKER_CUTS_PER_SERVICE = 2
DATABASE_CUTS = 3
SIGNERS = {"collegebesluit": ("Ann Aerts", "Bart Baert"), "ad hoc": ("David De Wit", "Sofie Smet", "Ann Aerts")}
AD_HOC_STEPS = [{"action": "sign", "signers": [f"person:{p}"]} for p in ("david.dewit", "sofie.smet", "ann.aerts")]
TERMINAL = ("completed", "declined", "withdrawn", "rejected")


@dataclass
class Document:
    external_ref: str
    flow: str  # "collegebesluit" (2 steps) or "ad hoc" (3 steps in the submission)
    published_at: float = 0.0

    @property
    def signers(self) -> tuple[str, ...]:
        return SIGNERS[self.flow]

    def body(self) -> dict[str, object]:
        pdf = make_pdf(text=f"Fault test {self.external_ref}")
        body = submission(pdf, external_ref=self.external_ref, title=f"Besluit {self.external_ref}")
        if self.flow == "ad hoc":
            del body["flow"]
            body["steps"] = AD_HOC_STEPS
        return body


@dataclass
class Flow:
    """Documents in flight and what the source and the signer saw of them."""

    system: System
    documents: list[Document]
    inbox: SourceInbox
    signer: AutoSigner
    started: float = field(default_factory=time.monotonic)

    async def publish_over(self, seconds: float) -> None:
        """Publish the documents one by one, spread over ``seconds``, as the source's day brings them."""
        for document in self.documents:
            document.published_at = time.monotonic()
            await self.system.publish(document.body())
            await asyncio.sleep(seconds / len(self.documents))

    def outcomes(self, document: Document, status: str) -> set[str]:
        """The distinct outcomes (by outcome_id) of one status the source received for ``document``."""
        return {r.body["outcome_id"] for r in self.inbox.of(document.external_ref) if r.body["status"] == status}

    def all_ended(self) -> bool:
        return all(any(self.outcomes(d, s) for s in TERMINAL) for d in self.documents)

    async def wait_until_all_ended(self, timeout: float) -> None:
        await self.inbox.wait_until(self.all_ended, timeout)


def plan(prefix: str, count: int) -> list[Document]:
    """``count`` documents, alternately on flow collegebesluit (2 signers) and with 3 ad-hoc steps."""
    return [Document(f"{prefix}-{i:03d}", "collegebesluit" if i % 2 == 0 else "ad hoc") for i in range(count)]


@pytest.fixture(scope="module")
async def crashing_city(infra: Infra, secrets_dir: str) -> AsyncIterator[System]:
    """A demo city of its own (its own database and vhost), scaled out (router ×2, signer ×3, notifier ×2, audit ×2):
    these tests kill its processes, each replica in turn while the others work on, and cut its connections."""
    async with city_on_fresh_install(infra, secrets_dir, "crashes", scale=SCALED) as system:
        yield system
        await assert_each_effect_once(system, resent_mails=True)  # killed notifiers: duplicate_mails checks the rest


@pytest.fixture
async def flowing(crashing_city: System) -> AsyncIterator[Callable[[list[Document]], Awaitable[Flow]]]:
    """``await flowing(documents)``: the source listening for outcomes and the signer following links, from the start."""
    inbox, signer = SourceInbox(crashing_city), AutoSigner(crashing_city.smtp)  # type: ignore[attr-defined]
    async with inbox, signer:

        async def start(documents: list[Document]) -> Flow:
            return Flow(crashing_city, documents, inbox, signer)

        yield start


# ---- the faults


Fault = tuple[str, str]  # (kind, service)


def fault_schedule(rng: random.Random) -> list[Fault]:
    """Every service killed KILLS_PER_SERVICE times and cut off from RabbitMQ BROKER_CUTS_PER_SERVICE times, the
    database cut DATABASE_CUTS times, in a random order."""
    faults = [("kill", s) for s in SERVICES for _ in range(KILLS_PER_SERVICE)]
    faults += [("broker", s) for s in SERVICES for _ in range(BROKER_CUTS_PER_SERVICE)]
    faults += [("database", "")] * DATABASE_CUTS
    rng.shuffle(faults)
    return faults


async def inject(faults: Faults, schedule: list[Fault], rng: random.Random, gap: tuple[float, float]) -> None:
    """Each fault of ``schedule`` after a random pause, a killed service started again before the next fault."""
    actions = {"kill": faults.kill, "broker": faults.close_broker_connections}
    for kind, service in schedule:
        await asyncio.sleep(rng.uniform(*gap))
        if kind == "database":
            await faults.terminate_database_backends()
        else:
            await actions[kind](service)


# ---- what must hold afterwards


def lost_and_doubled(flow: Flow) -> tuple[list[str], list[str]]:
    """Documents without a completed outcome, and documents with more than one terminal outcome or more than one
    distinct outcome of a status (two `accepted` with different outcome ids, say)."""
    lost = [d.external_ref for d in flow.documents if not flow.outcomes(d, "completed")]
    return lost, [d.external_ref for d in flow.documents if _doubled(flow, d)]


def _doubled(flow: Flow, document: Document) -> bool:
    per_status = [len(flow.outcomes(document, status)) for status in ("accepted", *TERMINAL)]
    return sum(per_status[1:]) > 1 or any(n > 1 for n in per_status)


def redelivered_copies(flow: Flow) -> int:
    """Outcomes that arrived more than once with the same message_id (at-least-once; a source drops them by it)."""
    refs = {d.external_ref for d in flow.documents}
    ids = Counter(r.message_id for r in flow.inbox.received if r.body.get("external_ref") in refs)
    return sum(n - 1 for n in ids.values())


def completed_pdf(flow: Flow, document: Document) -> tuple[bytes, list[str]]:
    """The signed PDF of ``document``'s completed outcome and the signers it names."""
    outcome = next(r.body for r in flow.inbox.of(document.external_ref) if r.body["status"] == "completed")
    return base64.b64decode(outcome["pdf"]), [s["signer"]["name"] for s in outcome["signatures"]]


async def signature_problems(flow: Flow) -> list[str]:
    """Each completed PDF must hold exactly its signers' signatures, valid and trusted, by pyHanko and by pdfsig."""
    root, problems = await flow.system.root_certificate(), []
    pdfs = [completed_pdf(flow, document) for document in flow.documents]
    for document, (pdf, named) in zip(flow.documents, pdfs, strict=True):
        checked = await pyhanko_validate(pdf, root)
        if named != list(document.signers) or [r.signer for r in checked] != list(document.signers):
            problems.append(f"{document.external_ref}: outcome names {named}, PDF signed by {[r.signer for r in checked]}")
        if not all(r.intact and r.valid and r.trusted for r in checked):
            problems.append(f"{document.external_ref}: pyHanko: {checked}")
    poppler = await asyncio.to_thread(pdfsig_all, [pdf for pdf, _ in pdfs], root)
    for document, checked in zip(flow.documents, poppler, strict=True):
        problems += _pdfsig_problems(document, checked)
    return problems


def _pdfsig_problems(document: Document, checked: list[PdfsigReport]) -> list[str]:
    if [r.signer for r in checked] != list(document.signers) or not all(
        r.signature_valid and r.certificate_trusted for r in checked
    ):
        return [f"{document.external_ref}: pdfsig: {[r.raw for r in checked]}"]
    return []


async def audit_problems(flow: Flow) -> list[str]:
    """`paraaf audit verify` says intact; per document the log holds one submitted, one completed and one
    signature.signed per signer; no event id twice."""
    verdict = flow.system.cli("audit", "verify", check=False)
    problems = [] if "intact" in verdict.stdout else [f"audit verify: {verdict.stdout}{verdict.stderr}"]
    conn = await asyncpg.connect(flow.system.env["PARAAF_DATABASE_URL"])
    try:
        if await conn.fetchval("SELECT count(*) - count(DISTINCT event_id) FROM audit.log"):
            problems.append("an event id is in audit.log twice")
        for document in flow.documents:
            problems += await _audited_once(conn, flow, document)
    finally:
        await conn.close()
    return problems


async def _audited_once(conn: asyncpg.Connection, flow: Flow, document: Document) -> list[str]:
    document_id = next(r.body["document_id"] for r in flow.inbox.of(document.external_ref))
    counts = dict(await conn.fetch("SELECT routing_key, count(*) FROM audit.log WHERE document_id = $1 GROUP BY 1", document_id))
    wanted = {"document.submitted": 1, "document.completed": 1, "signature.signed": len(document.signers)}
    if any(counts.get(key, 0) != n for key, n in wanted.items()):
        return [f"{document.external_ref}: audit log holds {counts}, expected {wanted}"]
    return []


async def dead_letters(system: System) -> dict[str, int]:
    """Messages in each dead-letter queue and in `unrouted`, those holding any."""
    names = [q.dead_letter_queue for q in TOPOLOGY.queues] + ["unrouted"]
    connection = await amqp.connect(system.amqp_url)  # any live node of a cluster's URL (tests/cluster uses it too)
    async with connection:
        channel = await connection.channel()
        counts = {name: (await channel.declare_queue(name, passive=True)).declaration_result.message_count for name in names}
    return {name: n for name, n in counts.items() if n}


async def outbox_left_stale(system: System, timeout: float = 30.0) -> dict[str, int]:
    """Outbox rows older than 10 s once the relays had time to catch up: a row written while the broker was away
    is old by the time it comes back, and a relay retries at most 10 s apart (shared/messaging.py)."""
    deadline = time.monotonic() + timeout
    while (stale := await stale_outbox_rows(system)) and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
    return stale


async def stale_outbox_rows(system: System) -> dict[str, int]:
    """Outbox rows older than 10 s, per service schema, those holding any."""
    conn = await asyncpg.connect(system.env["PARAAF_DATABASE_URL"])
    try:
        counts = {
            schema: await conn.fetchval(f"SELECT count(*) FROM {schema}.outbox WHERE created_at < now() - interval '10 s'")
            for schema in SERVICES
        }
    finally:
        await conn.close()
    return {schema: n for schema, n in counts.items() if n}


def duplicate_mails(system: System) -> list[tuple[str, str]]:
    """(recipient, subject) pairs mailed more than once as different messages: each signer gets one mail per
    document and kind. The same message twice (one Message-ID: the notifier killed between the SMTP server's
    acceptance and its own commit) is shown to the reader as one mail, and is counted by resent_mails instead."""
    distinct = {(to, m.subject, m.message["Message-ID"]) for m in system.smtp.received for to in m.to}  # type: ignore[attr-defined]
    sent = Counter((to, subject) for to, subject, _ in distinct)
    return [pair for pair, n in sent.items() if n > 1]


def resent_mails(system: System) -> int:
    """Copies of a mail already delivered, with its Message-ID (the notifier died before it recorded the send)."""
    everything = [(to, m.message["Message-ID"]) for m in system.smtp.received for to in m.to]  # type: ignore[attr-defined]
    return len(everything) - len(set(everything))


def dead_services(system: System) -> list[str]:
    return [name for name, process in system.processes.items() if process.poll() is not None]


def held_up(flow: Flow) -> dict[str, float]:
    """Per completed document, seconds from publishing it to the source receiving its completed outcome."""
    return {
        d.external_ref: min(r.at for r in flow.inbox.of(d.external_ref) if r.body["status"] == "completed") - d.published_at
        for d in flow.documents
        if flow.outcomes(d, "completed")
    }


def report_run(title: str, flow: Flow, faults: Faults, lost: list[str], doubled: list[str]) -> None:
    waits = held_up(flow) or {"none": 0.0}
    longest = max(waits, key=waits.__getitem__)
    kinds = ", ".join(f"{kind} {n}" for kind, n in sorted(faults.counts.items()))
    report(f"- {title} (seed {SEED}): {len(flow.documents)} documents, {len(flow.inbox.received)} outcomes received")
    report(f"  faults injected: {kinds}")
    completed = sum(bool(flow.outcomes(d, "completed")) for d in flow.documents)
    report(f"  completed {completed}, duplicates {len(doubled)}, lost {len(lost)}, redelivered copies {redelivered_copies(flow)}")
    report(
        f"  held up (published to completed): longest {waits[longest]:.1f} s ({longest}),"
        f" median {statistics.median(waits.values()):.1f} s"
    )
    report(f"  the signer's tries: {dict(flow.signer.answers)}; mails resent with their Message-ID: {resent_mails(flow.system)}")
    report(f"  took {time.monotonic() - flow.started:.0f} s")


async def assert_nothing_lost_or_doubled(title: str, flow: Flow, faults: Faults) -> None:
    """Everything the module docstring promises, reported first so a failing run still prints its numbers."""
    lost, doubled = lost_and_doubled(flow)
    report_run(title, flow, faults, lost, doubled)
    assert not lost and not doubled, f"lost {lost}; more than one terminal outcome {doubled}"
    assert not dead_services(flow.system), f"not running after the faults: {dead_services(flow.system)}"
    assert not (problems := await signature_problems(flow)), problems
    assert not (problems := await audit_problems(flow)), problems
    assert not (held := await dead_letters(flow.system)), f"dead letters the test did not put there: {held}"
    assert not (stale := await outbox_left_stale(flow.system)), f"outbox rows unpublished for over 10 s: {stale}"
    assert not (mails := duplicate_mails(flow.system)), f"mailed twice: {mails}"


# ---- the tests


async def test_no_document_is_lost_or_doubled_while_services_are_killed_and_cut_off(
    crashing_city: System, flowing: Callable[[list[Document]], Awaitable[Flow]]
) -> None:
    """Every service SIGKILLed and restarted 3 times, its broker connections closed, the database's backends
    terminated, all while documents flow: each completes once, signed once by each of its signers."""
    rng = random.Random(SEED)
    flow, faults = await flowing(plan("CRASH", DOCUMENTS)), Faults(crashing_city)
    await asyncio.gather(flow.publish_over(40), inject(faults, fault_schedule(rng), rng, gap=(0.5, 2.5)))
    await flow.wait_until_all_ended(timeout=90)
    await assert_nothing_lost_or_doubled("services killed and cut off", flow, faults)


@pytest.mark.serial
@pytest.mark.skipif(
    os.environ.get("PARAAF_FAULTS_RESTART_BROKER") != "1",
    reason="restarts the shared RabbitMQ: set PARAAF_FAULTS_RESTART_BROKER=1",
)
async def test_no_document_is_lost_or_doubled_when_rabbitmq_restarts(
    crashing_city: System, flowing: Callable[[list[Document]], Awaitable[Flow]]
) -> None:
    """RabbitMQ's application stopped and started once while documents are in flight: each completes once."""
    flow, faults = await flowing(plan("BROKER", DOCUMENTS // 5)), Faults(crashing_city)
    try:
        await flow.publish_over(5)
        await flow.inbox.wait_until(lambda: flow.signer.answers["signed"] >= len(flow.documents) // 2, timeout=60)
        await asyncio.to_thread(restart_broker_app)
        faults.counts["RabbitMQ app restarted"] += 1
    finally:
        await asyncio.to_thread(ensure_broker_running)
    await flow.wait_until_all_ended(timeout=120)
    await assert_nothing_lost_or_doubled("RabbitMQ restarted", flow, faults)
