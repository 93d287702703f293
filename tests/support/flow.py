"""Documents flowing through a running city while faults fall (tests/faults, tests/cluster): what the source sends,
what it and the signer saw come back, and what must hold of each document afterwards — one outcome, its signers'
signatures valid by pyHanko and by pdfsig, its events in the audit log once."""

import asyncio
import base64
import time
from collections import Counter
from dataclasses import dataclass, field

import asyncpg

from tests.support.autosigner import AutoSigner
from tests.support.faults import SourceInbox
from tests.support.pdfs import make_pdf
from tests.support.system import System, submission
from tests.support.validate import PdfsigReport, pdfsig_all, pyhanko_validate

__all__ = [
    "Document",
    "Flow",
    "audit_problems",
    "held_up",
    "lost_and_doubled",
    "plan",
    "redelivered_copies",
    "signature_problems",
]

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


def held_up(flow: Flow) -> dict[str, float]:
    """Per completed document, seconds from publishing it to the source receiving its completed outcome."""
    return {
        d.external_ref: min(r.at for r in flow.inbox.of(d.external_ref) if r.body["status"] == "completed") - d.published_at
        for d in flow.documents
        if flow.outcomes(d, "completed")
    }
