"""Round trips and CPU of intake's and the router's handlers per document, on a
fixed workload, without the broker: each message goes through the consumer
edge (``shared.messaging.process``: inbox mark, handler, outbox, commit) on a
one-connection pool of a fresh database, exactly as the services run it.

    python -m bench.hops [--documents 60] [--rounds 3] [--ad-hoc]

``--ad-hoc``: the documents the whole-pipeline bench submits (bench.pipeline's KINDS, steps in the submission, no
flow) instead of the demo's flow.

Reports statements a document (counted by wrapping asyncpg's connection),
this process's CPU ms a document (handlers, asyncpg) and the PostgreSQL
backend's (read from /proc, so run it on the database's machine). The PDF
check is measured apart: CPU of the check in a worker, and of handing the
submission to it and back. Compare branches by running both in turn.
"""

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg

from services.intake import handlers as intake_handlers
from services.intake.checks import SubmissionChecks
from services.intake.domain import SourcePolicy, Submission, examine_command, timely
from services.intake.pdf import Limits
from services.intake.store import PostgresIntakeStore
from services.router import handlers as router_handlers
from services.router.directory import DirectoryCache, import_directory
from services.router.importer import read_directory, read_flows, read_workbook
from services.router.store import PostgresRouterStore
from shared import blobs
from shared.contract import SubmitDocument
from shared.db import connect_pool, migrate
from shared.events import DocumentAccepted, DocumentCompleted, DocumentSubmitted, PersonRef, Signed
from shared.messaging import process
from shared.outbox import Outbox
from tests.support.pdfs import make_pdf
from tests.support.system import submission
from tests.support.workbook import city_with, write

ROOT = Path(blobs.__file__).resolve().parents[1]  # the tree the code is imported from
ADMIN = os.environ.get("PARAAF_BENCH_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
NOW = datetime(2026, 7, 10, 7, 0, tzinfo=UTC)


class Counted:
    """Statements sent on asyncpg connections (one round trip each), by kind."""

    def __init__(self) -> None:
        self.by_kind: Counter[str] = Counter()
        self.on = True
        conn_cls = asyncpg.connection.Connection
        self._original = conn_cls._execute, conn_cls.execute
        counted = self

        async def _execute(self, query, args, limit, timeout, **kw):  # noqa: ANN001, ANN202
            if counted.on:
                counted.by_kind[query.split()[0].upper()] += 1
            return await counted._original[0](self, query, args, limit, timeout, **kw)

        async def execute(self, query, *args, timeout=None):  # noqa: ANN001, ANN202
            if not args and counted.on:
                counted.by_kind["simple:" + query.split()[0].upper().rstrip(";")] += 1
            return await counted._original[1](self, query, *args, timeout=timeout)

        conn_cls._execute, conn_cls.execute = _execute, execute

    def total(self) -> int:
        return sum(self.by_kind.values())


class _Message:
    """What the consumer edge needs of a delivery here: its ack."""

    async def ack(self) -> None:
        return None


def _backend_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


SPENT: Counter[str] = Counter()  # CPU seconds in this process, by service
SENT: Counter[str] = Counter()  # statements, by service
COUNTED: "Counted | None" = None


async def _edge(pool: asyncpg.Pool, consumer: str, schema: str, work: Callable[[asyncpg.Connection], Awaitable[Any]]) -> None:
    before, started = COUNTED.total() if COUNTED else 0, time.process_time()
    outcome = await process(
        _Message(), pool=pool, consumer=consumer, schema=schema, key=uuid.uuid4(), work=work, dead_letters=None  # type: ignore[arg-type]
    )
    SPENT[schema] += time.process_time() - started
    SENT[schema] += (COUNTED.total() if COUNTED else 0) - before
    assert outcome == "handled", outcome


async def _uncounted(pool: asyncpg.Pool, query: str, *args: Any) -> Any:
    if COUNTED:
        COUNTED.on = False
    try:
        return await pool.fetch(query, *args)
    finally:
        if COUNTED:
            COUNTED.on = True


async def _document(pool: asyncpg.Pool, n: int, pdfs: dict[int, bytes], directories: DirectoryCache) -> int:
    """One document through intake and the router, as the pipeline runs it; how many signatures it took."""
    pdf = pdfs[1 if n % 2 else 30]
    body = submission(pdf, external_ref=f"H-{n}-{uuid.uuid4()}")
    if AD_HOC:
        from bench.pipeline import KINDS  # only here: it imports the test harness

        del body["flow"]
        body["steps"] = [{"action": "sign", "signers": [signer]} for signer in KINDS[n % len(KINDS)][1]]
    raw = json.dumps(body).encode()
    command = SubmitDocument.model_validate_json(raw)
    examined = timely(examine_command(Submission("submit.notula", raw, "notula"), command, Limits(50 << 20)), NOW, _TTL)
    intake = lambda conn: PostgresIntakeStore(conn, OUTBOXES["intake"])  # noqa: E731
    router = lambda conn: PostgresRouterStore(conn, OUTBOXES["router"], clock=lambda: NOW)  # noqa: E731
    documents: list[Any] = []

    async def submit(conn: asyncpg.Connection) -> None:
        documents.append(await intake_handlers.on_submission(examined, intake(conn)))

    await _edge(pool, "intake.submissions", "intake", submit)
    document = documents[0]
    submitted = DocumentSubmitted(
        correlation_id=document.document_id, org="default", source="notula", external_ref=document.external_ref,
        title=document.title, flow=document.flow, submitted_by=document.submitted_by, filename=document.filename,
        pdf_sha256=document.pdf_sha256, pdf_size=len(pdf), page_count=1, steps=command.steps,
    )
    await _edge(pool, "router.events", "router", lambda c: router_handlers.on_document_submitted(
        submitted, router(c), directories=directories, clock=lambda: NOW))
    accepted = DocumentAccepted.caused_by(submitted, flow=document.flow, step_count=len(command.steps or ()) or 1)
    await _edge(pool, "intake.events", "intake", lambda c: intake_handlers.on_document_accepted(accepted, intake(c)))
    signatures, revision = 0, 0
    while True:
        waiting = await _uncounted(
            pool,
            "SELECT request_id, step, person FROM router.requests WHERE document_id = $1 AND status = 'pending' ORDER BY created_at",
            document.document_id,
        )
        if not waiting:
            break
        request = waiting[0]
        revision += 1
        event = Signed(
            correlation_id=document.document_id, request_id=request["request_id"], step=request["step"], action="sign",
            signer=PersonRef.model_validate(request["person"]), signed_at=NOW, pdf_sha256=document.pdf_sha256, revision=revision,
        )
        await _edge(pool, "router.events", "router", lambda c, e=event: router_handlers.on_signed(
            e, router(c), directories=directories, clock=lambda: NOW))
        signatures += 1
    completed = DocumentCompleted(
        correlation_id=document.document_id, org="default", pdf_sha256=document.pdf_sha256, signatures=[],
        title=document.title, submitted_by=PersonRef(id="elen.elaut", name="Elen Elaut", email="elen@x.be"),
    )
    await _edge(pool, "intake.events", "intake", lambda c: intake_handlers.on_document_completed(completed, intake(c)))
    return signatures


_TTL = timedelta(days=3650)
AD_HOC = False  # --ad-hoc
OUTBOXES = {"intake": Outbox("intake"), "router": Outbox("router")}


async def _prepare(url: str) -> None:
    pool = await connect_pool(url, max_size=1)
    await migrate(pool, "blobs", [blobs.MIGRATIONS])
    await migrate(pool, "intake", [ROOT / "services" / "intake" / "migrations"])
    await migrate(pool, "router", [ROOT / "services" / "router" / "migrations"])
    with tempfile.TemporaryDirectory() as tmp:
        directory = read_directory(read_workbook(write(Path(tmp) / "city.xlsx", city_with())))
    async with pool.acquire() as conn, conn.transaction():
        store = PostgresRouterStore(conn, Outbox("router"))
        await import_directory(store, "default", directory)
        for flow in read_flows(ROOT / "deploy" / "demo" / "flows", directory):
            await store.save_flow("default", flow)
        await PostgresIntakeStore(conn, Outbox("intake")).upsert_source(SourcePolicy("notula", "default", ad_hoc_steps=True))
    await pool.close()


async def _round(url: str, documents: int, pdfs: dict[int, bytes], counted: Counted) -> dict[str, float]:
    pool = await connect_pool(url, max_size=1)
    directories = DirectoryCache()
    async with pool.acquire() as conn:
        backend = conn.get_server_pid()
    await _document(pool, -1, pdfs, directories)  # warm: prepared statements, the directory
    await pool.execute("DELETE FROM intake.outbox; DELETE FROM router.outbox")
    counted.by_kind.clear()
    SPENT.clear()
    SENT.clear()
    cpu, pg, signatures = time.process_time(), _backend_cpu(backend), 0
    for n in range(documents):
        signatures += await _document(pool, n, pdfs, directories)
    cpu, pg = time.process_time() - cpu, _backend_cpu(backend) - pg
    statements = counted.total()
    counted.on = False
    await pool.execute("DELETE FROM intake.outbox; DELETE FROM router.outbox")
    await pool.close()
    counted.on = True
    return {"statements": statements / documents, "cpu_ms": cpu * 1000 / documents, "pg_ms": pg * 1000 / documents,
            "signatures": signatures / documents, "kinds": dict(counted.by_kind),  # type: ignore[dict-item]
            **{f"{s}_ms": SPENT[s] * 1000 / documents for s in SPENT}, **{f"{s}_statements": SENT[s] / documents for s in SENT}}


async def _check_cost(pdfs: dict[int, bytes], repeats: int) -> tuple[float, float]:
    """CPU ms a submission of the check: in this process (handing it over and back), and in the worker."""
    checks = SubmissionChecks(Limits(50 << 20), workers=1, seconds=30, memory_mb=2000)
    await checks.start()
    worker = checks._pool._all[0].process.pid  # type: ignore[union-attr]
    examined = []
    for pages in (1, 30):
        raw = json.dumps(submission(pdfs[pages])).encode()
        examined.append((Submission("submit.notula", raw, "notula"), SubmitDocument.model_validate_json(raw)))
    here, there = time.process_time(), _backend_cpu(worker)
    for i in range(repeats):
        sub, command = examined[i % 2]
        await checks.command(sub, command)
    here, there = time.process_time() - here, _backend_cpu(worker) - there
    checks.close()
    return here * 1000 / repeats, there * 1000 / repeats


async def main(documents: int, rounds: int) -> None:
    name = f"bench_hops_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(ADMIN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = ADMIN.rsplit("/", 1)[0] + "/" + name
    pdfs = {pages: make_pdf(pages, text=f"Paraaf bench, {pages} page(s)") for pages in (1, 30)}
    try:
        await _prepare(url)
        global COUNTED
        counted = COUNTED = Counted()
        results = [await _round(url, documents, pdfs, counted) for _ in range(rounds)]
        print(f"signatures a document: {results[0]['signatures']:.2f}")
        print(f"statements a document: {results[0]['statements']:.2f}  by kind: {sorted(results[0]['kinds'].items())}")
        print(f"statements a document: intake {results[0]['intake_statements']:.2f}, router {results[0]['router_statements']:.2f}")
        for key in ("cpu_ms", "intake_ms", "router_ms", "pg_ms"):
            values = [r[key] for r in results]
            print(f"{key} a document: median {statistics.median(values):.2f} (rounds: {', '.join(f'{v:.2f}' for v in values)})")
        here, there = await _check_cost(pdfs, 4 * documents)
        print(f"PDF check a submission: service process {here:.2f} ms, worker {there:.2f} ms")
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    import logging

    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--ad-hoc", action="store_true", help="the whole-pipeline bench's documents: steps, no flow")
    options = parser.parse_args()
    AD_HOC = options.ad_hoc
    asyncio.run(main(options.documents, options.rounds))
    sys.exit(0)
