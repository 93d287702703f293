"""The whole pipeline under load, end to end, against its two limits in the same run.

The demo city in July (the mayor away, Sofie Smet signing for him), every
service its own OS process on a fresh database and vhost. A source system
submits documents on ``esign.intake`` (persistent, confirmed): flows of 1, 2
and 3 signatures, some asking the absent mayor, 1- and 30-page PDFs in turn.
Every signer is played as a browser does over HTTP the moment the mail
arrives at the SMTP server: open the emailed link, press Sign.

* **peak**: a closed loop keeping ``--in-flight`` documents on their way
  (a new one submitted as each ends), for ``--peak-seconds`` (``--minutes``
  for a long run). Signatures/s and documents/s are counted after the first
  quarter (at most 10 s) of the phase, once the pipeline is full.
* **half load**: an open loop offering half the peak's signatures per second
  (as documents per second at the mix's signatures per document), for
  ``--half-seconds``; the latencies with goals are read here.
* **limits**, before the city starts: a bare pyHanko loop signing the same
  documents with the signer's own code (bench/limits.py), the same with
  pyHanko as released, tuned as issue 15 words it (bench/stock_pyhanko.py),
  and a bare aio-pika confirmed publish/consume loop.

Printed: throughput and ratios to the limits, latency percentiles (submit →
first mail; sign click → confirmation page; sign click → next signer's mail;
submit → outcome), CPU seconds per signature and peak RSS per service, the
reference city's year (96,607 signatures) at the peak rate, and with
``--profile`` where each service spent its time (py-spy; var/bench/profiles/).

Run: ``python -m bench.pipeline`` (about three minutes). Needs PostgreSQL and
RabbitMQ as the tests do.
"""

import argparse
import asyncio
import base64
import binascii
import contextlib
import json
import math
import os
import re
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import aio_pika
import aiohttp
import asyncpg
import httpx
import uvloop
from aiosmtpd.controller import Controller
from yarl import URL

from bench.limits import bare_broker, bare_pyhanko
from bench.procs import Machine, Profiler, Usage, machine, summarise, usage
from bench.stats import goal_mark, latency_line, rate_in_window, ratio_line
from bench.stock_pyhanko import stock_pyhanko
from tests.conftest import LOCAL_AMQP, LOCAL_DATABASE, Infra, VhostAdmin, _remove_session_accounts, fresh_database, fresh_vhost
from tests.support.net import free_port
from tests.support.pdfs import make_pdf
from tests.support.session import MANAGEMENT_API
from tests.support.signing import SigningCity
from tests.support.system import SERVICES, System, demo_city, submission

__all__ = ["main"]

ROOT = Path(__file__).resolve().parents[1]
PROFILES = ROOT / "var" / "bench" / "profiles"
# The broker: the tests' (PARAAF_TEST_AMQP_URL and PARAAF_TEST_MANAGEMENT_API, else the local one).
AMQP = os.environ.get("PARAAF_TEST_AMQP_URL", LOCAL_AMQP)
_API = urlsplit(MANAGEMENT_API)
API, API_AUTH = (
    urlunsplit(_API._replace(netloc=_API.hostname + (f":{_API.port}" if _API.port else ""))),
    (_API.username or "guest", _API.password or "guest"),
)
TENTH_OF_JULY = "2026-07-10T09:00:00+02:00"  # the mayor is away all July (deploy/demo/city.xlsx)
YEAR_SIGNATURES = 96_607  # the reference city's year
GOALS = {"ratio to bare pyHanko": 0.5, "click → confirmation p95": 0.3, "click → next mail p95": 1.0, "year minutes": 60.0}

# (label, signers in order): every step one signer, so "the next signer's mail" is one mail.
KINDS = (
    ("1 signature", ("person:ann.aerts",)),
    ("2 signatures", ("person:pieter.peeters", "person:ann.aerts")),
    ("2, mayor away", ("person:ann.aerts", "role:burgemeester")),
    ("3 signatures", ("person:david.dewit", "person:marc.maes", "person:lies.leys")),
    ("3, mayor away", ("person:david.dewit", "role:burgemeester", "person:lies.leys")),
)
PAGES = (1, 30)
SIGNATURES_PER_DOCUMENT = sum(len(signers) for _, signers in KINDS) / len(KINDS)

_TITLE = re.compile(rb"PIPE-\d{6}")  # the subject's (the header comes before the body), else the body's
_LINK = re.compile(rb"https?://[^\s<>\"]+/s/[A-Za-z0-9_-]+")  # the plain-text part's (it comes before the HTML part)
_CSRF = re.compile(r'name="csrf" value="([0-9a-f]+)"')
_FIRST_PAGE = re.compile(r'<img src="([^"]+)"')  # the page's first picture loads at once; the others lazily
_HTTP_TIMEOUT = aiohttp.ClientTimeout(total=60)


class ApiVhosts(VhostAdmin):
    """Vhosts made and removed over the management API: ``rabbitmqctl`` fails while the other runs on this machine hold
    every port of its distribution range (35672-35682), the API does not."""

    def _api(self) -> tuple[str, tuple[str, str]]:
        return API, API_AUTH

    def create(self, name: str) -> str:
        api, auth = self._api()
        httpx.put(f"{api}/vhosts/{quote(name, safe='')}", auth=auth, timeout=60).raise_for_status()
        httpx.put(
            f"{api}/permissions/{quote(name, safe='')}/{self._user}",
            auth=auth,
            json={"configure": ".*", "write": ".*", "read": ".*"},
            timeout=60,
        ).raise_for_status()
        return urlunsplit(self._url._replace(path="/" + quote(name, safe="")))

    def delete(self, name: str) -> None:
        api, auth = self._api()
        httpx.delete(f"{api}/vhosts/{quote(name, safe='')}", auth=auth, timeout=60)


def kind_of(number: int) -> tuple[tuple[str, ...], int]:
    """Document ``number``'s signers and pages: the kinds in turn, 1 and 30 pages every other round."""
    return KINDS[number % len(KINDS)][1], PAGES[(number // len(KINDS)) % len(PAGES)]


@dataclass
class Document:
    number: int
    phase: str
    signers: tuple[str, ...]
    pages: int
    submitted: float = math.nan
    mails: dict[int, float] = field(default_factory=dict)  # step (0-based) → the signing mail's arrival
    clicks: dict[int, float] = field(default_factory=dict)  # step → Sign pressed
    confirmed: dict[int, float] = field(default_factory=dict)  # step → the confirmation page received
    outcome: float | None = None
    status: str | None = None
    failures: list[str] = field(default_factory=list)

    @property
    def ref(self) -> str:
        return f"PIPE-{self.number:06d}"


class Mailbox:
    """A real SMTP server (aiosmtpd) that hands every accepted mail, quoted-printable decoded, with the moment it
    arrived, to ``on_mail`` in the bench's event loop.

    The mail is not parsed: the email package with its full policy took ~5 ms of this process's CPU a mail (a
    signature brings ~1.5 mails), CPU taken from the services on a shared machine. Decoding the quoted-printable
    (in C) over the raw mail is enough for a regex to find the reference and the link, even where a soft line
    break splits the link."""

    def __init__(self) -> None:
        self.host, self.port = "127.0.0.1", free_port()
        self.on_mail: Callable[[bytes, float], None] = lambda mail, at: None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._controller = Controller(self, hostname=self.host, port=self.port)

    async def handle_EHLO(self, server: object, session: Any, envelope: object, hostname: str, responses: list[str]) -> list[str]:  # noqa: N802 - aiosmtpd hook
        """Offer PIPELINING (RFC 2920) as the relays a city sends through (Postfix, Exchange, hosted relays) do:
        without it the notifier takes four round trips a mail instead of two, a path production does not take."""
        session.host_name = hostname
        return [*responses[:-1], "250-PIPELINING", responses[-1]]

    async def handle_DATA(self, server: object, session: object, envelope: Any) -> str:  # noqa: N802 - aiosmtpd hook
        arrived = time.monotonic()
        mail = binascii.a2b_qp(envelope.original_content or envelope.content)
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self.on_mail, mail, arrived)
        return "250 OK"

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        await asyncio.to_thread(self._controller.start)

    async def stop(self) -> None:
        await asyncio.to_thread(self._controller.stop)


class Load:
    """Submits documents as the source ``notula`` does and signs each as its mail arrives; keeps every moment."""

    def __init__(self, system: System, mailbox: Mailbox, parallel: int) -> None:
        self._system = system
        self._slots = asyncio.Semaphore(parallel)
        self._pdfs = {pages: base64.b64encode(make_pdf(pages, text=f"Paraaf bench, {pages} page(s)")).decode() for pages in PAGES}
        self.documents: dict[str, Document] = {}
        self._changed = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self.ignored_mails = 0
        self._parallel = parallel
        mailbox.on_mail = self._on_mail

    async def __aenter__(self) -> "Load":
        # The signers' browsers share one pool of kept-alive HTTP/1.1 connections: an httpx client made per signature
        # built a TLS context (the CA bundle read and parsed), ~25 ms of this process's CPU a signature for plain
        # HTTP. aiohttp (pyHanko's own dependency), its parser in C, then took ~0.7 ms of CPU a signature's three
        # requests where httpx took ~3 (measured against a Starlette app).
        self._connections = aiohttp.TCPConnector(limit=self._parallel)
        self._source = await aio_pika.connect(self._system.source_urls["notula"])
        channel = await self._source.channel(publisher_confirms=True)
        self._intake = await channel.get_exchange("esign.intake", ensure=False)
        self._user = aio_pika.connection.URL(self._system.source_urls["notula"]).user
        self._observer = await aio_pika.connect(self._system.amqp_url)
        observing = await self._observer.channel()
        outcomes = await observing.get_exchange("esign.outcomes", ensure=True)
        queue = await observing.declare_queue(exclusive=True)
        await queue.bind(outcomes, "#")
        await queue.consume(self._on_outcome)
        return self

    async def __aexit__(self, *exc: object) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._source.close()
        await self._observer.close()
        await self._connections.close()

    def open(self) -> int:
        return sum(d.outcome is None for d in self.documents.values())

    async def submit(self, phase: str) -> Document:
        signers, pages = kind_of(len(self.documents))
        document = Document(len(self.documents), phase, signers, pages)
        self.documents[document.ref] = document
        body = submission(
            b"",
            external_ref=document.ref,
            title=f"Besluit {document.ref}",
            filename=f"{document.ref}.pdf",
            steps=[{"action": "sign", "signers": [signer]} for signer in signers],
        )
        del body["flow"]
        body["pdf"] = self._pdfs[pages]
        message = aio_pika.Message(
            json.dumps(body).encode(),
            content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            user_id=self._user,
        )
        document.submitted = time.monotonic()
        await self._intake.publish(message, routing_key="submit.notula")
        return document

    def _on_mail(self, mail: bytes, arrived: float) -> None:
        title, link = _TITLE.search(mail), _LINK.search(mail)
        document = self.documents.get(title.group(0).decode()) if title else None
        if document is None or link is None:  # the submitter's "completed" mail, or not ours
            self.ignored_mails += 1
            return
        step = len(document.mails)
        document.mails[step] = arrived
        task = asyncio.create_task(self._sign(document, step, link.group(0).decode()))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _sign(self, document: Document, step: int, link: str) -> None:
        """What the signer's browser does: open the link's page (with its first page's picture), press Sign, get the
        confirmation page."""
        # A browser of its own (its own cookies: the CSRF nonce; the page is on an IP address, so unsafe=True) over the
        # shared connections. Redirects are not followed, as before: Sign answers with the confirmation page itself.
        browser = aiohttp.ClientSession(
            connector=self._connections, connector_owner=False, timeout=_HTTP_TIMEOUT, cookie_jar=aiohttp.CookieJar(unsafe=True)
        )
        async with self._slots, browser:
            try:
                async with browser.get(link, allow_redirects=False) as page:
                    text = await page.text()
                csrf = _CSRF.search(text)
                if page.status != 200 or csrf is None:
                    document.failures.append(f"step {step + 1}: the page answered {page.status}")
                    return
                if picture := _FIRST_PAGE.search(text):
                    # Read, not decoded: a browser decodes the picture, but on the phone's CPU, not the server's.
                    async with browser.get(URL(link).join(URL(picture.group(1), encoded=True)), allow_redirects=False) as image:
                        await image.read()
                document.clicks[step] = time.monotonic()
                async with browser.post(f"{link}/sign", data={"csrf": csrf.group(1)}, allow_redirects=False) as answer:
                    await answer.read()
                document.confirmed[step] = time.monotonic()
            except (aiohttp.ClientError, TimeoutError) as exc:
                document.failures.append(f"step {step + 1}: {exc!r}")
                return
        if answer.status != 200:
            document.failures.append(f"step {step + 1}: Sign answered {answer.status}")
            del document.confirmed[step]

    async def _on_outcome(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        arrived = time.monotonic()
        async with message.process():
            status = (message.routing_key or "").rpartition(".")[2]
            if status == "accepted":
                return
            document = self.documents.get(json.loads(message.body).get("external_ref", ""))
            if document is not None and document.outcome is None:
                document.outcome, document.status = arrived, status
                self._changed.set()

    async def _changes(self, until: float) -> None:
        self._changed.clear()
        try:
            await asyncio.wait_for(self._changed.wait(), timeout=max(0.0, until - time.monotonic()))
        except TimeoutError:
            pass

    async def drain(self, timeout: float) -> None:
        """Until every document submitted has its outcome (or ``timeout`` passed)."""
        deadline = time.monotonic() + timeout
        while self.open() and time.monotonic() < deadline:
            await self._changes(deadline)

    async def closed_loop(self, phase: str, in_flight: int, seconds: float) -> tuple[float, float]:
        """``in_flight`` documents on their way for ``seconds``; the phase's (start, end)."""
        started = time.monotonic()
        end = started + seconds
        while time.monotonic() < end:
            while self.open() < in_flight:
                await self.submit(phase)
            await self._changes(end)
        return started, end

    async def open_loop(self, phase: str, per_second: float, seconds: float) -> tuple[float, float]:
        """A document every 1/``per_second`` s for ``seconds``, whatever happens to the earlier ones."""
        per_second = max(per_second, 1 / seconds)  # at least one document, even after a peak that signed nothing
        started = time.monotonic()
        for n in range(max(1, round(per_second * seconds))):
            await asyncio.sleep(max(0.0, started + n / per_second - time.monotonic()))
            await self.submit(phase)
        return started, started + seconds

    def of(self, phase: str) -> list[Document]:
        return [d for d in self.documents.values() if d.phase == phase]


def latencies(documents: list[Document]) -> dict[str, list[float]]:
    """The four latencies, in seconds, over these documents' steps."""
    found: dict[str, list[float]] = {
        "submit → first mail": [],
        "sign click → confirmation page": [],
        "sign click → next signer's mail": [],
        "submit → outcome": [],
    }
    for d in documents:
        if 0 in d.mails:
            found["submit → first mail"].append(d.mails[0] - d.submitted)
        for step, click in d.clicks.items():
            if step in d.confirmed:
                found["sign click → confirmation page"].append(d.confirmed[step] - click)
            if step + 1 in d.mails:
                found["sign click → next signer's mail"].append(d.mails[step + 1] - click)
        if d.outcome is not None:
            found["submit → outcome"].append(d.outcome - d.submitted)
    return found


@dataclass
class Phase:
    name: str
    documents: int
    signatures: int
    window: float
    signatures_per_second: float
    documents_per_second: float
    latencies: dict[str, list[float]]
    cpu: dict[str, float]  # service → CPU seconds in the phase
    unfinished: int
    failures: list[str]


def phase_figures(load: Load, name: str, window: tuple[float, float], before: dict[str, Usage], after: dict[str, Usage]) -> Phase:
    documents = load.of(name)
    confirmations = [t for d in documents for t in d.confirmed.values()]
    outcomes = [d.outcome for d in documents if d.outcome is not None]
    return Phase(
        name,
        len(documents),
        len(confirmations),
        window[1] - window[0],
        rate_in_window(confirmations, *window),
        rate_in_window(outcomes, *window),
        latencies(documents),
        {s: after[s].cpu_seconds - before[s].cpu_seconds for s in after},
        sum(d.outcome is None for d in documents),
        [f"{d.ref}: {failure}" for d in documents for failure in d.failures]
        + [f"{d.ref}: {d.status}" for d in documents if d.status not in (None, "completed")],
    )


# Every count in one statement: one round trip a second, not six.
_WAITING = "SELECT " + ", ".join(
    [
        f'(SELECT count(*) FROM {schema}.outbox) AS "outbox {schema}"'
        for schema in ("intake", "router", "signer", "notifier", "audit")
    ]
    + ["(SELECT count(*) FROM notifier.mails WHERE status = 'pending') AS \"mails to send\""]
)


class Backlog:
    """Where work waits, sampled every second: each queue's messages (ready and unacked, from the management API),
    each service's outbox rows not yet published, and the notifier's mails not yet sent."""

    def __init__(self, system: System) -> None:
        self._system = system
        self._vhost = quote(unquote(urlsplit(system.amqp_url).path[1:]), safe="")
        self.samples: list[dict[str, int]] = []

    async def _sample(self, conn: asyncpg.Connection, client: httpx.AsyncClient) -> dict[str, int]:
        found: dict[str, int] = {}
        queues = await client.get(f"{API}/queues/{self._vhost}?columns=name,messages")
        for queue in queues.json():
            if not queue["name"].endswith(".dlq") and not queue["name"].startswith(
                ("amq.", "outcomes.")
            ):  # a source reads its own
                found[f"queue {queue['name']}"] = int(queue.get("messages") or 0)
        found.update(await conn.fetchrow(_WAITING))
        return found

    async def watch(self, stop: asyncio.Event) -> None:
        conn = await asyncpg.connect(self._system.env["PARAAF_DATABASE_URL"])
        try:
            async with httpx.AsyncClient(auth=API_AUTH, timeout=10) as client:
                while not stop.is_set():
                    self.samples.append(await self._sample(conn, client))
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), timeout=1.0)
        finally:
            await conn.close()

    def means(self) -> dict[str, float]:
        names = {name for sample in self.samples for name in sample}
        return (
            {name: sum(s.get(name, 0) for s in self.samples) / len(self.samples) for name in sorted(names)}
            if self.samples
            else {}
        )


def usages(system: System) -> dict[str, Usage]:
    return {service: usage(system.processes[service].pid) for service in SERVICES}


def published(amqp_url: str) -> int:
    """Messages published in the vhost so far, as the management API counts them (refreshed every ~5 s)."""
    vhost = quote(unquote(urlsplit(amqp_url).path[1:]), safe="")
    answer = httpx.get(f"{API}/vhosts/{vhost}", auth=API_AUTH, timeout=60)
    answer.raise_for_status()
    return int(answer.json().get("message_stats", {}).get("publish", 0))


@dataclass
class Results:
    bare_pyhanko: float
    bare_broker: float
    stock_pyhanko: float
    peak: Phase
    half: Phase
    offered: float
    cpu_per_signature: dict[str, float]
    peak_rss: dict[str, Usage]
    messages_per_signature: float
    bench_cpu_seconds: float
    backlog: dict[str, float]  # mean over the peak phase
    load: tuple[float, float]  # the machine's 1-minute load average as the peak began and as the half phase ended
    profiles: dict[str, list[str]]
    machine: dict[str, float]  # CPU seconds per signature during the peak phase, by who used them


async def run(args: argparse.Namespace) -> Results:
    infra = Infra(AMQP, LOCAL_DATABASE, ApiVhosts(AMQP))
    documents = [
        (make_pdf(kind_of(n)[1], text=f"Paraaf bench, {kind_of(n)[1]} page(s)"), len(kind_of(n)[0]))
        for n in range(len(KINDS) * len(PAGES))
    ]
    city = SigningCity()
    credentials = city.credentials("Ann Aerts", "algemeen directeur")
    pyhanko = await asyncio.to_thread(bare_pyhanko, documents, credentials, args.bare_seconds)
    stock = await stock_pyhanko(documents, credentials, args.bare_seconds)
    mailbox = Mailbox()
    await mailbox.start()
    try:
        with tempfile.TemporaryDirectory() as secrets:
            async with fresh_database(infra) as database_url, fresh_vhost(infra) as amqp_url:
                broker = await bare_broker(amqp_url, count=args.bare_messages)
                async with demo_city(
                    "bench-pipeline",
                    database_url=database_url,
                    amqp_url=amqp_url,
                    smtp=mailbox,  # type: ignore[arg-type]
                    secrets_dir=secrets,
                    PARAAF_CLOCK_START=TENTH_OF_JULY,
                ) as system:
                    return await _measure(system, mailbox, args, pyhanko, broker, stock)
    finally:
        await mailbox.stop()


async def _measure(
    system: System, mailbox: Mailbox, args: argparse.Namespace, pyhanko: float, broker: float, stock: float
) -> Results:
    bench_started = os.times()
    async with Load(system, mailbox, args.parallel) as load:
        for _ in range(len(KINDS)):  # warm up: every kind once, so first-use costs stay out of the figures
            await load.submit("warm-up")
        await load.drain(120)
        published_before = published(system.amqp_url)
        profiler = Profiler(PROFILES)
        if args.profile:
            profiler.start({s: system.processes[s].pid for s in SERVICES})
        before, load_before = usages(system), os.getloadavg()[0]
        machine_before, bench_before = machine(), os.times()
        backlog, stop_watching = Backlog(system), asyncio.Event()
        watching = asyncio.create_task(backlog.watch(stop_watching))
        started, end = await load.closed_loop("peak", args.in_flight, args.peak_seconds)
        stop_watching.set()
        await watching
        await load.drain(120)
        after_peak, machine_after, bench_after = usages(system), machine(), os.times()
        profiler.stop()
        settle = min(10.0, args.peak_seconds / 4)
        peak = phase_figures(load, "peak", (started + settle, end), before, after_peak)
        offered = peak.signatures_per_second / 2
        window = await load.open_loop("half", offered / SIGNATURES_PER_DOCUMENT, args.half_seconds)
        await load.drain(120)
        after_half = usages(system)
        half = phase_figures(load, "half", window, after_peak, after_half)
        await asyncio.sleep(6)  # the management API's counters lag by up to 5 s
        messages = published(system.amqp_url) - published_before
    signatures = peak.signatures + half.signatures
    bench_used = os.times()
    return Results(
        pyhanko,
        broker,
        stock,
        peak,
        half,
        offered,
        {s: (after_half[s].cpu_seconds - before[s].cpu_seconds) / max(1, signatures) for s in SERVICES},
        after_half,
        messages / max(1, signatures),
        bench_used.user + bench_used.system - bench_started.user - bench_started.system,
        backlog.means(),
        (load_before, os.getloadavg()[0]),
        {s: summarise(PROFILES / f"{s}.txt") for s in SERVICES if args.profile and (PROFILES / f"{s}.txt").exists()},
        machine_shares(
            peak, machine_before, machine_after, bench_after.user + bench_after.system - bench_before.user - bench_before.system
        ),
    )


def machine_shares(peak: Phase, before: Machine, after: Machine, bench_cpu: float) -> dict[str, float]:
    """Where the machine's CPU went during the peak phase (from its start until its documents drained), in
    seconds per signature confirmed in it: Paraaf's services, this load generator, PostgreSQL, RabbitMQ, the rest
    of the machine, and idle."""
    signatures = max(1, peak.signatures)
    services = sum(peak.cpu.values())
    programs = {name: after.programs[name] - before.programs[name] for name in after.programs}
    busy = after.busy - before.busy
    shares = {"Paraaf's services": services, "load generator (this bench)": bench_cpu, **programs}
    shares["everything else"] = max(0.0, busy - sum(shares.values()))
    shares["idle"] = (after.total - before.total) - busy
    return {name: seconds / signatures for name, seconds in shares.items()}


def report(r: Results, args: argparse.Namespace) -> str:
    peak, half = r.peak, r.half
    year_minutes = YEAR_SIGNATURES / peak.signatures_per_second / 60 if peak.signatures_per_second else math.nan
    lines = [
        f"pipeline: 5 services, demo city in July, {os.cpu_count()} cores shared with this load generator"
        f" (it used {r.bench_cpu_seconds:.0f} CPU s; load average {r.load[0]:.1f} at the start, {r.load[1]:.1f} at the end); mix: {', '.join(k for k, _ in KINDS)}; 1- and 30-page PDFs",
        f"peak ({args.in_flight} documents in flight, {args.peak_seconds:.0f} s, counted over the last {peak.window:.0f} s):"
        f" {peak.signatures_per_second:.2f} signatures/s, {peak.documents_per_second:.2f} documents/s"
        f" ({peak.documents} documents, {peak.signatures} signatures)",
        f"half load (offered {r.offered:.2f} signatures/s = {r.offered / SIGNATURES_PER_DOCUMENT:.2f} documents/s,"
        f" {args.half_seconds:.0f} s): {half.signatures_per_second:.2f} signatures/s,"
        f" {half.documents_per_second:.2f} documents/s ({half.documents} documents, {half.signatures} signatures)",
        "limits, same run, same machine:",
        f"  bare pyHanko loop (same documents, same code, one process): {r.bare_pyhanko:.2f} signatures/s",
        f"  stock pyHanko loop (same documents; pyHanko as released, cached key, reserved bytes, same stamp):"
        f" {r.stock_pyhanko:.2f} signatures/s",
        f"  bare aio-pika (persistent, confirmed, quorum queue, published and consumed at once): {r.bare_broker:.0f} messages/s",
        "ratios:",
        ratio_line(
            "pipeline signatures/s at peak / bare pyHanko loop",
            peak.signatures_per_second,
            r.bare_pyhanko,
            goal=GOALS["ratio to bare pyHanko"],
        ),
        ratio_line(
            "pipeline signatures/s at peak / stock pyHanko loop",
            peak.signatures_per_second,
            r.stock_pyhanko,
            goal=GOALS["ratio to bare pyHanko"],
        ),
        ratio_line(
            f"broker messages/s at peak ({r.messages_per_signature:.1f} a signature) / bare aio-pika",
            peak.signatures_per_second * r.messages_per_signature,
            r.bare_broker,
        ),
        "latencies at half load (ms; goals on p95):",
    ]
    goals = {
        "sign click → confirmation page": GOALS["click → confirmation p95"],
        "sign click → next signer's mail": GOALS["click → next mail p95"],
    }
    lines += [latency_line(name, values, goals.get(name)) for name, values in half.latencies.items()]
    lines.append("latencies at peak (ms; for reference, no goal):")
    lines += [latency_line(name, values) for name, values in peak.latencies.items()]
    lines.append(
        "per service: CPU seconds per signature (peak + half phases, workers included), peak RSS (main process; with workers)"
    )
    for service in SERVICES:
        used = r.peak_rss[service]
        lines.append(
            f"  {service:<9} {r.cpu_per_signature[service] * 1000:7.1f} ms CPU/signature"
            f"   peak phase {peak.cpu[service]:6.1f} s, half phase {half.cpu[service]:6.1f} s"
            f"   RSS {used.peak_rss_mib:6.0f} MiB; {used.peak_rss_tree_mib:6.0f} MiB in {used.processes} process(es)"
        )
    lines.append(
        f"  {'all':<9} {sum(r.cpu_per_signature.values()) * 1000:7.1f} ms CPU/signature"
        f" (bare pyHanko loop: {1000 / r.bare_pyhanko:.1f} ms of wall time a signature)"
    )
    if r.machine:
        cores = sum(r.machine.values())
        lines.append(
            f"where the machine's {os.cpu_count()} cores went during the peak phase (CPU ms per signature;"
            f" PostgreSQL and RabbitMQ machine-wide, with anyone else using them):"
        )
        lines += [f"  {name:<30} {seconds * 1000:7.1f} ms  {seconds / cores:6.1%}" for name, seconds in r.machine.items()]
    lines.append(
        f"reference city's year ({YEAR_SIGNATURES:,} signatures) at the peak rate: {year_minutes:.0f} minutes"
        f" (goal <= {GOALS['year minutes']:.0f}) {goal_mark(year_minutes, GOALS['year minutes'], at_most=True)};"
        f" extrapolated from a {args.peak_seconds:.0f}-second run"
    )
    lines.append("where work waited during the peak phase (mean of 1-second samples; 0 omitted):")
    lines += [f"  {name:<40} {mean:6.1f}" for name, mean in r.backlog.items() if mean >= 0.05]
    for name, phase in (("peak", peak), ("half", half)):
        if phase.unfinished or phase.failures:
            lines.append(
                f"{name}: {phase.unfinished} document(s) without an outcome; {len(phase.failures)} failure(s): {phase.failures[:5]}"
            )
    for service, summary in r.profiles.items():
        lines.append(f"profile {service} ({PROFILES / (service + '.txt')}), self time:")
        lines += [f"  {line}" for line in summary]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> Results:
    parser = argparse.ArgumentParser(prog="python -m bench.pipeline", description=__doc__.split("\n\n")[0])
    parser.add_argument("--peak-seconds", type=float, default=60.0, help="length of the peak phase")
    parser.add_argument("--minutes", type=float, help="a long peak phase (e.g. 10, to extrapolate the year from)")
    parser.add_argument("--half-seconds", type=float, default=45.0, help="length of the half-load phase")
    parser.add_argument("--in-flight", type=int, default=24, help="documents on their way during the peak phase")
    parser.add_argument("--parallel", type=int, default=16, help="signers pressing Sign at the same moment, at most")
    parser.add_argument("--bare-seconds", type=float, default=12.0, help="length of the bare pyHanko loop")
    parser.add_argument("--bare-messages", type=int, default=3000, help="messages through the bare aio-pika loop")
    parser.add_argument("--profile", action="store_true", help=f"py-spy every service during the peak phase, into {PROFILES}")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    if args.minutes:
        args.peak_seconds = args.minutes * 60
    try:
        # On uvloop, as the services run: the bare aio-pika loop is measured under the same loop, and the load
        # generator (the signers' browsers, the source system) takes less of the cores the pipeline is measured on.
        results = uvloop.run(run(args))
    finally:
        _remove_session_accounts(Infra(AMQP, LOCAL_DATABASE, ApiVhosts(AMQP)))
    print(report(results, args), flush=True)
    if args.json:
        args.json.write_text(json.dumps(asdict(results), indent=1, default=str))
    return results


if __name__ == "__main__":
    main()
