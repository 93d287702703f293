"""Validation reports: for every signature in a PDF, who signed (and on whose
behalf), when, whether the signed bytes are intact, whether the certificate
chains to a trusted root, what changed in the document after it, and its
PAdES level: B-B (a signature), B-T (with an RFC 3161 timestamp), B-LT (and
the validation data to check it later is in the document), B-LTA (and a
document timestamp covers that data).

Nothing is fetched: a B-LT or B-LTA signature is validated with the chain,
CRLs and OCSP responses in the document's security store (DSS) alone, at the
time its timestamps prove, so it stays valid after its certificate expires or
is revoked, with no network.

:func:`verify_pdf` is CPU-bound (50–200 ms for a handful of signatures): the
HTTP endpoint runs it in the signing workers, the command line in-process.
"""

import asyncio
import dataclasses
import io
from dataclasses import asdict, dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

import pypdfium2
from asn1crypto import pem
from asn1crypto import x509 as asn1_x509
from pyhanko.pdf_utils.misc import PdfReadError
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.diff_analysis import ModificationLevel
from pyhanko.sign.validation import async_validate_pdf_signature, async_validate_pdf_timestamp
from pyhanko.sign.validation.dss import DocumentSecurityStore
from pyhanko.sign.validation.errors import NoDSSFoundError, SignatureValidationError
from pyhanko.sign.validation.pdf_embedded import EmbeddedPdfSignature
from pyhanko.sign.validation.status import PdfSignatureStatus
from pyhanko_certvalidator import ValidationContext

from services.signer.verification import CODE_ON_PAGE, read_code

__all__ = ["NotVerifiable", "Report", "SignatureReport", "load_roots", "verify_pdf", "verify_pdf_async"]

# Prefixes of a signature's /Reason that name the person signed for (see stamps.on_behalf_text).
_ON_BEHALF = ("wnd. ", "p.o. ", "on behalf of ")


class NotVerifiable(ValueError):
    """The file is not a PDF that can be read."""


@dataclass(frozen=True)
class SignatureReport:
    field: str
    signer: str
    title: str
    organisation: str
    on_behalf_of: str | None
    signing_time: str | None  # ISO 8601, UTC
    timestamped: bool  # the time comes from an RFC 3161 timestamp, not the signer's clock
    certification: bool
    intact: bool  # the signed bytes are unchanged
    valid: bool  # the signature value matches the signer's certificate
    trusted: bool  # the certificate chains to a trusted root
    coverage: str  # "entire file" or "entire revision"
    changed_after: str
    later_signatures: list[str]
    ok: bool
    problems: list[str] = field(default_factory=list)
    level: str = "B-B"  # PAdES baseline level: B-B, B-T, B-LT or B-LTA


@dataclass(frozen=True)
class Report:
    signatures: list[SignatureReport]
    problems: list[str] = field(default_factory=list)  # about the file as a whole
    document_timestamps: list[str] = field(default_factory=list)  # ISO 8601, UTC, oldest first
    verification_code: str | None = None  # as printed on the first page (the secret is never read out)

    @property
    def ok(self) -> bool:
        return bool(self.signatures) and not self.problems and all(s.ok for s in self.signatures)

    def to_dict(self) -> dict:
        return {
            "ok": self.ok, "problems": self.problems, "document_timestamps": self.document_timestamps,
            "verification_code": self.verification_code,
            "signatures": [asdict(s) for s in self.signatures],
        }

    def to_text(self, timezone: str = "Europe/Brussels") -> str:
        lines = [f"{'OK' if self.ok else 'FAILED'}: {len(self.signatures)} signature(s)"]
        lines += [f"  ! {problem}" for problem in self.problems]
        if self.verification_code:
            lines.append(f"verification code: {self.verification_code} (check it with its secret at the address printed beside it)")
        for stamped in self.document_timestamps:
            lines.append(f"  document timestamp: {datetime.fromisoformat(stamped).astimezone(ZoneInfo(timezone)):%d-%m-%Y %H:%M:%S %Z}")
        for number, s in enumerate(self.signatures, start=1):
            who = s.signer + (f" ({s.title})" if s.title else "") + (f", {s.organisation}" if s.organisation else "")
            lines.append(f"\n#{number} {s.field}: {'OK' if s.ok else 'FAILED'}")
            lines.append(f"  signer:        {who}")
            if s.on_behalf_of:
                lines.append(f"  on behalf of:  {s.on_behalf_of}")
            if s.signing_time:
                local = datetime.fromisoformat(s.signing_time).astimezone(ZoneInfo(timezone))
                source = "timestamp" if s.timestamped else "signer's clock"
                lines.append(f"  signed at:     {local:%d-%m-%Y %H:%M:%S %Z} ({source})")
            lines.append(f"  kind:          {'certification (DocMDP)' if s.certification else 'approval'}")
            lines.append(f"  level:         PAdES {s.level}")
            lines.append(f"  intact:        {_yes(s.intact)}")
            lines.append(f"  valid:         {_yes(s.valid)}")
            lines.append(f"  trusted:       {_yes(s.trusted)}")
            lines.append(f"  covers:        {s.coverage}")
            lines.append(f"  changed after: {s.changed_after}")
            lines += [f"  ! {problem}" for problem in s.problems]
        return "\n".join(lines) + "\n"


def _yes(value: bool) -> str:
    return "yes" if value else "NO"


def load_roots(pem_or_der: bytes) -> list[asn1_x509.Certificate]:
    """Certificates from a PEM bundle (or one DER certificate)."""
    if pem.detect(pem_or_der):
        return [asn1_x509.Certificate.load(der) for _, _, der in pem.unarmor(pem_or_der, multiple=True)]
    return [asn1_x509.Certificate.load(pem_or_der)]


def _on_behalf_of(embedded: EmbeddedPdfSignature) -> str | None:
    reason = str(embedded.sig_object.get("/Reason", ""))
    for prefix in _ON_BEHALF:
        if reason.startswith(prefix):
            return reason[len(prefix) :]
    return None


def _changed_after(status: PdfSignatureStatus, later: list[str]) -> tuple[str, str | None]:
    """What happened to the document after this signature, and the problem that is, if any."""
    level = status.modification_level
    if status.coverage.name == "ENTIRE_FILE":
        return "nothing: this signature covers the whole file", None
    if level is None or level == ModificationLevel.OTHER:
        return (
            "the document was changed after this signature in a way that is not a signature",
            "content changed after signing",
        )
    described = {
        ModificationLevel.NONE: "nothing but new revisions without changes",
        ModificationLevel.LTA_UPDATES: "only validation data and timestamps were added",
        ModificationLevel.FORM_FILLING: "only later signatures" + (f" ({', '.join(later)})" if later else ""),
        ModificationLevel.ANNOTATIONS: "later signatures and annotations (comments)",
    }[level]
    if status.docmdp_ok is False:
        return described, "the changes after this signature are not allowed by its modification policy (DocMDP)"
    return described, None


def _problems(status: PdfSignatureStatus, change_problem: str | None) -> list[str]:
    """What is wrong with a signature, in words; empty when nothing is."""
    timestamp = status.timestamp_validity
    problems = []
    if not status.intact:
        problems.append("the signed bytes were changed: the document was tampered with")
    elif not status.valid:
        problems.append("the signature value does not match the signer's certificate")
    elif not status.trusted:
        # (pyHanko does not judge trust for a signature that is not intact, so that is reported once, above)
        problems.append("the certificate does not chain to a trusted root")
    if timestamp is not None and not (timestamp.intact and timestamp.valid and timestamp.trusted):
        problems.append("the timestamp is not valid or not trusted")
    if change_problem:
        problems.append(change_problem)
    return problems


def _report(embedded: EmbeddedPdfSignature, status: PdfSignatureStatus, later: list[str]) -> SignatureReport:
    subject = status.signing_cert.subject.native
    timestamp = status.timestamp_validity
    when = timestamp.timestamp if timestamp is not None else status.signer_reported_dt
    changed_after, change_problem = _changed_after(status, later)
    problems = _problems(status, change_problem)
    return SignatureReport(
        field=embedded.field_name,
        signer=subject.get("common_name", ""),
        title=subject.get("title", ""),
        organisation=subject.get("organization_name", ""),
        on_behalf_of=_on_behalf_of(embedded),
        signing_time=when.isoformat() if when else None,
        timestamped=timestamp is not None,
        certification=embedded.docmdp_level is not None and "/Reference" in embedded.sig_object,
        intact=status.intact,
        valid=status.valid,
        trusted=status.trusted,
        coverage=status.coverage.name.lower().replace("_", " "),
        changed_after=changed_after,
        later_signatures=later,
        ok=not problems,
        problems=problems,
    )


def _name(embedded: EmbeddedPdfSignature) -> str:
    try:
        return embedded.signer_cert.subject.native.get("common_name", embedded.field_name)
    except (ValueError, KeyError):
        return embedded.field_name


def _dss_context(reader: PdfFileReader, roots: list[asn1_x509.Certificate], at: datetime | None = None) -> ValidationContext:
    """Trusting ``roots``, with the document's own validation data, fetching nothing; ``at``: as of that moment,
    with revocation data required wherever a certificate says where it is published (hard-fail)."""
    options: dict = {"trust_roots": roots, "allow_fetching": False}
    if at is not None:
        options.update(moment=at, revocation_mode="hard-fail")
    try:
        dss = DocumentSecurityStore.read_dss(reader)
    except NoDSSFoundError:
        return ValidationContext(**options)
    return dss.as_validation_context(options)


def _has_dss(reader: PdfFileReader) -> bool:
    try:
        DocumentSecurityStore.read_dss(reader)
    except NoDSSFoundError:
        return False
    return True


async def _level(
    reader: PdfFileReader, embedded: EmbeddedPdfSignature, status: PdfSignatureStatus, roots: list[asn1_x509.Certificate],
    archive_revisions: list[int],
) -> tuple[str, str | None]:
    """The signature's PAdES level, and the problem when the document's validation data does not validate it.

    B-LT means: as of the time its timestamp proves, the chain and revocation data in the DSS alone show the
    certificate good (this holds after the certificate expires or is revoked later)."""
    timestamp = status.timestamp_validity
    if timestamp is None:
        return "B-B", None
    if not _has_dss(reader):
        return "B-T", None
    try:
        then = await async_validate_pdf_signature(embedded, _dss_context(reader, roots, at=timestamp.timestamp))
    except SignatureValidationError:
        return "B-T", None  # reported by the validation as of now
    if then.revoked:
        return "B-T", "the validation data in the document shows the certificate revoked when it signed"
    if not then.bottom_line:
        return "B-T", None  # the document lacks (some of) the data: a signature without long-term data is B-T
    archived = any(revision > embedded.signed_revision for revision in archive_revisions)
    return ("B-LTA" if archived else "B-LT"), None


async def _document_timestamps(
    timestamps: list[EmbeddedPdfSignature], context: ValidationContext
) -> tuple[list[str], list[int], list[str]]:
    """(times, revisions of the valid ones, problems) of the document timestamps."""
    times, revisions, problems = [], [], []
    for timestamp in timestamps:
        try:
            status = await async_validate_pdf_timestamp(timestamp, context)
        except SignatureValidationError as exc:
            problems.append(f"a document timestamp cannot be validated: {exc}")
            continue
        if not (status.intact and status.valid and status.trusted):
            problems.append("a document timestamp is not valid or not trusted")
            continue
        times.append(status.timestamp.isoformat())
        revisions.append(timestamp.signed_revision)
    return times, revisions, problems


async def verify_pdf_async(pdf: bytes, roots: list[asn1_x509.Certificate]) -> Report:
    try:
        reader = PdfFileReader(io.BytesIO(pdf), strict=False)
        embedded = sorted(reader.embedded_regular_signatures, key=lambda s: s.signed_revision)
        timestamps = sorted(reader.embedded_timestamp_signatures, key=lambda s: s.signed_revision)
    except (PdfReadError, ValueError, KeyError) as exc:
        raise NotVerifiable(f"not a readable PDF: {exc}") from None
    code = _printed_code(pdf)
    if not embedded:
        return Report([], problems=["the document holds no signatures"], verification_code=code)
    stamped, archive_revisions, problems = await _document_timestamps(timestamps, _dss_context(reader, roots))
    reports = []
    for position, signature in enumerate(embedded):
        later = [_name(s) for s in embedded[position + 1 :]]
        try:
            status = await async_validate_pdf_signature(signature, _dss_context(reader, roots))
        except SignatureValidationError as exc:
            reports.append(_broken(signature, later, str(exc)))
            continue
        level, long_term_problem = await _level(reader, signature, status, roots, archive_revisions)
        report = _report(signature, status, later)
        if long_term_problem:
            report = dataclasses.replace(report, ok=False, problems=[*report.problems, long_term_problem])
        reports.append(dataclasses.replace(report, level=level))
    return Report(reports, problems=problems, document_timestamps=stamped, verification_code=code)


def _printed_code(pdf: bytes) -> str | None:
    """The verification code in the first page's text, when it is one (its check digit holds)."""
    try:
        document = pypdfium2.PdfDocument(pdf)
    except pypdfium2.PdfiumError:
        return None
    try:
        text = document[0].get_textpage().get_text_range() if len(document) else ""
    finally:
        document.close()
    for match in CODE_ON_PAGE.finditer(text):
        if read_code(match.group(1)):
            return match.group(1)
    return None


def _broken(embedded: EmbeddedPdfSignature, later: list[str], why: str) -> SignatureReport:
    return SignatureReport(
        field=embedded.field_name,
        signer=_name(embedded),
        title="",
        organisation="",
        on_behalf_of=_on_behalf_of(embedded),
        signing_time=None,
        timestamped=False,
        certification=False,
        intact=False,
        valid=False,
        trusted=False,
        coverage="unknown",
        changed_after="unknown",
        later_signatures=later,
        ok=False,
        problems=[f"the signature cannot be validated: {why}"],
    )


def verify_pdf(pdf: bytes, roots_der: tuple[bytes, ...]) -> Report:
    """Worker entry point (plain bytes in, a picklable report out)."""
    return asyncio.run(verify_pdf_async(pdf, [asn1_x509.Certificate.load(der) for der in roots_der]))
