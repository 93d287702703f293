"""PAdES signing with pyHanko, run in worker processes (signing is CPU-bound).

:func:`sign` is what a worker runs: it takes plain bytes (picklable) and
returns the PDF with one more signature, added as an incremental update so
every earlier signature stays valid. Each worker keeps the parsed key and
certificate of every signer it has seen, so no key is parsed per signature.

The content is locked from the first signature on: when the number of
signatures the document will hold is known, the first one is a
*certification* signature (DocMDP P=2: only form filling and signing may
follow) and its revision already holds an empty, visible signature field for
every later signer. Later signers fill their field. Creating them up front
matters: pyHanko's validator (stricter than Acrobat) treats a new visible
field after a certification signature as a forbidden change. When the number
is not known, every signature is an approval signature in a new field; a
validator then still reports any change that is not a signature.

Long-term validation (with a time-stamping service): every signature is
PAdES B-LT: after it, an incremental update adds a document security store
(DSS) with the chain and the CRL the job carries (the signer builds its own
CRL in-process, see keys.py) and whatever revocation data the TSA's chain
names. The signature that completes the document is B-LTA: a document
timestamp follows the DSS. :func:`retimestamp` adds a fresh one later
(``paraaf archive retimestamp``). See :func:`_long_term`.
"""

import asyncio
import dataclasses
import io
import os
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime
from functools import cache, lru_cache
from typing import Any, TypeVar

import pypdfium2
from asn1crypto import keys as asn1_keys
from asn1crypto import x509 as asn1_x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from pkcs11.exceptions import PKCS11Error
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.content import RawContent
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.layout import AxisAlignment, BoxConstraints, InnerScaling, Margins, SimpleBoxLayoutRule
from pyhanko.pdf_utils.misc import PdfError
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.pdf_utils.text import TextBoxStyle
from pyhanko.sign import fields, signers
from pyhanko.sign.fields import MDPPerm, SigFieldSpec
from pyhanko.sign.timestamps.aiohttp_client import HTTPTimeStamper
from pyhanko.sign.timestamps.common_utils import TimestampRequestError
from pyhanko.stamp import TextStampStyle
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.errors import PathBuildingError, PathValidationError
from pyhanko_certvalidator.registry import SimpleCertificateStore

from services.signer import hsm
from services.signer.code_stamp import stamp_footer
from services.signer.fonts import DEFAULT_FONT, stamp_font
from services.signer.stamps import (
    PLACEHOLDER,
    STAMP_HEIGHT,
    STAMP_WIDTH,
    Box,
    bottom_box,
    field_name,
    placeholder_box,
)
from shared import pyhanko_fast
from shared.workers import WorkerDied, WorkerPool, WorkerTimedOut

__all__ = [
    "SigningUnavailable",
    "BYTES_RESERVED",
    "BYTES_RESERVED_TIMESTAMPED",
    "TimestampUnavailable",
    "CachedKeySigner",
    "Placeholder",
    "SigningJob",
    "SigningPool",
    "SigningResult",
    "archive_timestamp_expiry",
    "find_placeholders",
    "retimestamp",
    "sign",
]

T = TypeVar("T")

pyhanko_fast.install()  # hex strings read in one go: the certification's /Contents before every later signature

# The CMS container is ~3.5 KB (RSA-2048 signer + RSA-3072 root), ~4.1 KB
# with a key in a PKCS#11 token and a certificate naming its CRL (8,208 hex
# digits: over the 8,192 once reserved); a timestamp token adds the TSA's
# signature and chain, ~3-6 KB more. Reserving enough means pyHanko signs once
# instead of once to measure and once for real.
BYTES_RESERVED = 12288
BYTES_RESERVED_TIMESTAMPED = 20480


@dataclass(frozen=True)
class Placeholder:
    number: int  # [SIG03] -> 3
    page: int  # 0-based
    box: Box


@dataclass(frozen=True)
class SigningJob:
    pdf: bytes
    key_der: bytes  # unencrypted PKCS#8; only ever in memory
    cert_der: bytes
    chain_der: tuple[bytes, ...]
    number: int  # 1 for the first signature Paraaf puts in this document
    stamp_text: str
    signer_name: str
    reason: str
    planned: int | None = None  # signatures the finished document will hold, when known
    placeholders: tuple[Placeholder, ...] | None = None  # None: not looked for yet
    tsa_url: str | None = None
    font_path: str = DEFAULT_FONT
    # Long-term validation (only with tsa_url): the CRLs to embed, the TSA's trusted roots (none: the
    # self-signed ones it sends), and whether this signature completes the document (B-LTA).
    crls_der: tuple[bytes, ...] = ()
    tsa_roots_der: tuple[bytes, ...] = ()
    completes: bool = False
    footer: str | None = None  # the verification footer for every page (first signature only)
    token: hsm.TokenConfig | None = None  # the key is in this PKCS#11 token (key_der empty) ...
    token_key_id: bytes | None = None  # ... under this CKA_ID


@dataclass(frozen=True)
class SigningResult:
    pdf: bytes
    field_name: str
    certified: bool  # this signature is the document's certification signature
    placeholders: tuple[Placeholder, ...]
    footer_stamped: bool = False
    # The pages (0-based) whose picture this signature may have changed; every other page looks as it did before it,
    # so its picture can be kept (render.RenderPool.derive). None: any page may have changed.
    changed_pages: frozenset[int] | None = None


class CachedKeySigner(pyhanko_fast.ParsedSigningCertificate, signers.SimpleSigner):
    """SimpleSigner re-parses its key for every signature (~45 ms); this one keeps the parsed key, and its
    signing-certificate attribute parsed (pyhanko_fast)."""

    def __init__(self, cert: asn1_x509.Certificate, key: RSAPrivateKey, registry: SimpleCertificateStore) -> None:
        key_info = asn1_keys.PrivateKeyInfo.load(
            key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        )
        super().__init__(signing_cert=cert, signing_key=key_info, cert_registry=registry)
        self._key = key

    def sign_raw(self, data: bytes, digest_algorithm: str) -> bytes:
        mechanism = self.get_signature_mechanism_for_digest(digest_algorithm).signature_algo
        if mechanism != "rsassa_pkcs1v15":
            return super().sign_raw(data, digest_algorithm)
        return self._key.sign(data, padding.PKCS1v15(), getattr(hashes, digest_algorithm.upper())())


@lru_cache(maxsize=512)
def _signer(key_der: bytes, cert_der: bytes, chain_der: tuple[bytes, ...]) -> CachedKeySigner:
    key = serialization.load_der_private_key(key_der, password=None)
    if not isinstance(key, RSAPrivateKey):
        raise TypeError("signer keys are RSA")
    registry = SimpleCertificateStore.from_certs([asn1_x509.Certificate.load(c) for c in chain_der])
    return CachedKeySigner(asn1_x509.Certificate.load(cert_der), key, registry)


def _job_signer(job: SigningJob) -> signers.Signer:
    """The job's key: in the token (this worker's session, logged in once), else parsed from its bytes; kept per worker."""
    if job.token is not None and job.token_key_id is not None:
        return hsm.pdf_signer(job.token, job.token_key_id, job.cert_der, job.chain_der)
    return _signer(job.key_der, job.cert_der, job.chain_der)


def find_placeholders(pdf: bytes) -> tuple[Placeholder, ...]:
    """Every ``[SIGnn]`` text in the document (the first occurrence of each number), with a stamp box on it."""
    found: dict[int, Placeholder] = {}
    document = pypdfium2.PdfDocument(pdf)
    try:
        for page_index in range(len(document)):
            page = document[page_index]
            text = page.get_textpage()
            search = text.search("[SIG", match_case=True)
            while (match := search.get_next()) is not None:
                start, _ = match
                number = PLACEHOLDER.fullmatch(text.get_text_range(start, 7))
                if number is None or int(number.group(1)) in found:
                    continue
                left, _bottom, _right, top = text.get_charbox(start)
                found[int(number.group(1))] = Placeholder(
                    int(number.group(1)), page_index, placeholder_box(tuple(page.get_mediabox()), left, top)
                )
    finally:
        document.close()
    return tuple(sorted(found.values(), key=lambda p: p.number))


def _slot_page(number: int, placeholders: tuple[Placeholder, ...]) -> int:
    """The page of signature ``number`` (0-based; -1: the last): its placeholder's, else the last."""
    return next((p.page for p in placeholders if p.number == number), -1)


MediaBox = tuple[float, float, float, float]


def _slot(number: int, placeholders: tuple[Placeholder, ...], last_media_box: Callable[[], MediaBox]) -> tuple[int, Box]:
    """(page, box) of signature ``number``: its placeholder, else the next free slot at the bottom of the last page."""
    for placeholder in placeholders:
        if placeholder.number == number:
            return placeholder.page, placeholder.box
    taken = {p.number for p in placeholders}
    index = sum(1 for n in range(1, number) if n not in taken)
    return -1, bottom_box(last_media_box(), index)


def _last_media_box(writer: IncrementalPdfFileWriter) -> Callable[[], MediaBox]:
    """The last page's /MediaBox, looked up once when first asked: pyHanko finds a page by reading every page object
    before it (~2 ms for the last of 30), and a certification prepares a slot there for each signature to come."""

    @cache
    def media_box() -> MediaBox:
        page_ref, _ = writer.find_page_for_modification(-1)
        llx, lly, urx, ury = (float(v) for v in page_ref.get_object()["/MediaBox"])
        return llx, lly, urx, ury

    return media_box


def _last_page(writer: IncrementalPdfFileWriter) -> Any:
    """The last page (a reference), found from the end of the page tree: one page object read, not all of them
    (pyHanko's lookup reads each page before it). None when the tree does not end in a page."""
    node = writer.root["/Pages"]
    for _ in range(64):  # deeper than any page tree a document has
        kids = node.get("/Kids")
        if not kids:
            return None
        kid = kids.raw_get(len(kids) - 1)  # the reference (indexing an array gives the object)
        if not isinstance(kid, generic.IndirectObject):
            return None
        node = kid.get_object()
        if node.get("/Type") != "/Pages":
            return kid.reference
    return None


def _is_certified(writer: IncrementalPdfFileWriter) -> bool:
    try:
        return "/DocMDP" in writer.root["/Perms"]
    except KeyError:
        return False


def _stamp_style(font_path: str) -> TextStampStyle:
    font = stamp_font(font_path)
    # An opaque white card, so a placeholder text under the stamp does not show through.
    card = RawContent(b"1 1 1 rg 0 0 %d %d re f" % (STAMP_WIDTH, STAMP_HEIGHT), box=BoxConstraints(STAMP_WIDTH, STAMP_HEIGHT))
    return TextStampStyle(
        stamp_text="%(paraaf)s",
        border_width=1,
        background=card,
        background_opacity=1,
        background_layout=SimpleBoxLayoutRule(
            x_align=AxisAlignment.ALIGN_MIN,
            y_align=AxisAlignment.ALIGN_MIN,
            margins=Margins(0, 0, 0, 0),
            inner_content_scaling=InnerScaling.STRETCH_FILL,
        ),
        inner_content_layout=SimpleBoxLayoutRule(
            x_align=AxisAlignment.ALIGN_MIN, y_align=AxisAlignment.ALIGN_MID, margins=Margins(6, 6, 4, 4)
        ),
        text_box_style=TextBoxStyle(font=font, font_size=9) if font else TextBoxStyle(font_size=9),
    )


@dataclass(frozen=True)
class _Field:
    certify: bool
    new: SigFieldSpec | None  # the field to add; None: it is there already (prepared, or added just now)
    pages: frozenset[int] | None  # the pages (0-based) that get a field or a stamp; None: not known


def _field(writer: IncrementalPdfFileWriter, job: SigningJob, placeholders: tuple[Placeholder, ...]) -> _Field:
    """The field of signature ``job.number``; the first of a planned set certifies and prepares a field for each
    signature to come."""
    name = field_name(job.number)
    empty = {f[0]: f[2] for f in fields.enumerate_sig_fields(writer.prev, filled_status=False)}
    signed_before = any(True for _ in fields.enumerate_sig_fields(writer.prev, filled_status=True))
    if name in empty:  # prepared by the certification signature (or by whoever made the PDF): fill it
        # Where the certification signature put it, unless the widget says another page (or nothing).
        page = _slot_page(job.number, placeholders)
        try:
            expected = writer.find_page_for_modification(page)[0].reference if page >= 0 else _last_page(writer)
        except (PdfError, KeyError):  # a page tree that does not hold that page: not known
            expected = None
        there = expected is not None and _widget_page(empty[name]) == expected
        return _Field(False, None, frozenset({_page_index(writer, page)}) if there else None)
    last_media_box = _last_media_box(writer)
    if not signed_before and job.planned:
        last = max([job.planned, job.number, *(p.number for p in placeholders)])
        pages = set()
        for number in range(job.number, last + 1):
            page, box = _slot(number, placeholders, last_media_box)
            fields.append_signature_field(writer, SigFieldSpec(field_name(number), on_page=page, box=box))
            pages.add(_page_index(writer, page))
        return _Field(True, None, frozenset(pages))
    if _is_certified(writer):
        # More signers than planned: a new visible field would break the
        # certification, so this signature goes in without a stamp.
        return _Field(False, SigFieldSpec(name, on_page=-1, box=None), frozenset({_page_index(writer, -1)}))
    page, box = _slot(job.number, placeholders, last_media_box)
    return _Field(False, SigFieldSpec(name, on_page=page, box=box), frozenset({_page_index(writer, page)}))


def _page_index(writer: IncrementalPdfFileWriter, page: int) -> int:
    """``page`` as pyHanko takes it (-1: the last) as a 0-based index."""
    return page if page >= 0 else int(writer.root["/Pages"]["/Count"]) + page


def _widget_page(field: Any) -> Any:
    """The page (a reference) a field's widget names in /P, the widget being the field itself or its one kid; None
    when it names none."""
    widget = field.get_object()
    kids = widget.get("/Kids")
    if kids is not None:
        if len(kids) != 1:
            return None
        widget = kids[0].get_object()
    return widget.get_value_as_reference("/P", optional=True)


def _pdf_signer(job: SigningJob, certify: bool, new_field: SigFieldSpec | None) -> signers.PdfSigner:
    return signers.PdfSigner(
        signers.PdfSignatureMetadata(
            field_name=field_name(job.number),
            md_algorithm="sha256",
            subfilter=fields.SigSeedSubFilter.PADES,
            name=job.signer_name,
            reason=job.reason,
            certify=certify,
            docmdp_permissions=MDPPerm.FILL_FORMS,
        ),
        signer=_job_signer(job),
        timestamper=_timestamper(job.tsa_url, int(time.time() // 3600)) if job.tsa_url else None,
        stamp_style=_stamp_style(job.font_path),
        new_field_spec=new_field,
    )


@lru_cache(maxsize=4)
def _timestamper(tsa_url: str, hour: int) -> HTTPTimeStamper:
    """One time-stamper per worker, TSA and hour: pyHanko keeps the TSA's certificates from its first (dummy)
    answer in it, which B-LT otherwise asks the TSA for again before every signature; renewed hourly, so a TSA
    that changes its certificate is seen within the hour."""
    return HTTPTimeStamper(tsa_url, timeout=30)


def _verification_footer(writer: IncrementalPdfFileWriter, job: SigningJob) -> bool:
    """The verification code on every page, in the revision this (first) signature signs, so it and
    every later signature cover it; before any field is made, as part of the certified content."""
    return job.footer is not None and stamp_footer(writer, job.footer)


async def _sign(job: SigningJob) -> SigningResult:
    writer = IncrementalPdfFileWriter(io.BytesIO(job.pdf), strict=False)
    footer_stamped = _verification_footer(writer, job)
    placeholders = job.placeholders if job.placeholders is not None else find_placeholders(job.pdf)
    field = _field(writer, job, placeholders)
    output = io.BytesIO()
    pdf_signer = _pdf_signer(job, field.certify, field.new)
    await _long_term(pdf_signer, job)
    await pdf_signer.async_sign_pdf(
        writer,
        bytes_reserved=BYTES_RESERVED_TIMESTAMPED if job.tsa_url else BYTES_RESERVED,
        appearance_text_params={"paraaf": job.stamp_text},
        output=output,
    )
    # The footer is on every page; a document timestamp (B-LTA) adds a field of its own.
    changed = None if footer_stamped or (job.tsa_url and job.completes) else field.pages
    return SigningResult(output.getvalue(), field_name(job.number), field.certify, placeholders, footer_stamped, changed)


def _self_signed(token: object) -> list[asn1_x509.Certificate]:
    """The self-signed certificates a TSA sends along with its token (its roots, for most)."""
    certs = token["content"]["certificates"] or []  # type: ignore[index]
    return _self_signed_in([c.chosen for c in certs if c.name == "certificate"])


async def _tsa_roots(timestamper: HTTPTimeStamper, roots_der: tuple[bytes, ...]) -> list[asn1_x509.Certificate]:
    """The TSA's roots: those configured (PARAAF_TSA_ROOTS), else the ones it sends. Either way they only say
    whose revocation data to collect; whoever validates the document decides whom to trust."""
    if roots_der:
        return [asn1_x509.Certificate.load(der) for der in roots_der]
    return _self_signed(await timestamper.async_dummy_response("sha256"))


async def _validation_context(job: SigningJob, timestamper: HTTPTimeStamper) -> ValidationContext:
    """What the signer checks its own chain and the TSA's with before signing; what it collects goes into the DSS.

    Paraaf's own CRL comes from the job, so no request goes to our own URL (reachable from the signer or not);
    fetching stays allowed for the TSA's chain, which names its own CRL or OCSP responder."""
    roots = [asn1_x509.Certificate.load(der) for der in job.chain_der] + await _tsa_roots(timestamper, job.tsa_roots_der)
    return ValidationContext(trust_roots=roots, crls=list(job.crls_der), allow_fetching=True)


async def _long_term(pdf_signer: signers.PdfSigner, job: SigningJob) -> None:
    """Make ``pdf_signer`` PAdES B-LT (B-LTA when the signature completes the document), when a TSA is set."""
    timestamper = pdf_signer.default_timestamper
    if not isinstance(timestamper, HTTPTimeStamper):
        return
    pdf_signer.signature_meta = dataclasses.replace(
        pdf_signer.signature_meta,
        embed_validation_info=True,
        validation_context=await _validation_context(job, timestamper),
        use_pades_lta=job.completes,
    )


def archive_timestamp_expiry(pdf: bytes) -> datetime | None:
    """When the certificate of the document's last document timestamp expires; None when it has none yet."""
    reader = PdfFileReader(io.BytesIO(pdf), strict=False)
    timestamps = reader.embedded_timestamp_signatures
    return timestamps[-1].signer_cert.not_valid_after if timestamps else None


async def _retimestamp(pdf: bytes, tsa_url: str, org_roots_der: tuple[bytes, ...], tsa_roots_der: tuple[bytes, ...]) -> bytes:
    reader = PdfFileReader(io.BytesIO(pdf), strict=False)
    timestamper = HTTPTimeStamper(tsa_url, timeout=30)
    roots = [asn1_x509.Certificate.load(der) for der in org_roots_der] + await _tsa_roots(timestamper, tsa_roots_der)
    if not tsa_roots_der:  # the last timestamp may come from another TSA (or its earlier root)
        roots += [c for ts in reader.embedded_timestamp_signatures[-1:] for c in _self_signed_in(ts.other_embedded_certs)]
    context = ValidationContext(trust_roots=roots, allow_fetching=True)
    output = await signers.PdfTimeStamper(timestamper).async_update_archival_timestamp_chain(reader, context, in_place=False)
    return output.getvalue()


def _self_signed_in(certs: list[asn1_x509.Certificate]) -> list[asn1_x509.Certificate]:
    return [c for c in certs if c.self_signed]


def retimestamp(pdf: bytes, tsa_url: str, org_roots_der: tuple[bytes, ...], tsa_roots_der: tuple[bytes, ...] = ()) -> bytes:
    """Worker entry point: ``pdf`` with its DSS brought up to date for its last document timestamp and a fresh
    document timestamp after it (an incremental update: every signature and earlier timestamp stays valid)."""
    try:
        return asyncio.run(_retimestamp(pdf, tsa_url, org_roots_der, tsa_roots_der))
    except (TimestampRequestError, OSError, TimeoutError) as exc:
        raise TimestampUnavailable(
            f"the time-stamping service {tsa_url} did not answer ({exc.__class__.__name__}: {exc})"[:500]
        ) from None


class SigningUnavailable(RuntimeError):
    """Nothing was signed, for a reason that passes: the time-stamping service does not answer, a worker died."""


class TimestampUnavailable(SigningUnavailable):
    """Nothing was signed because the time-stamping service (PARAAF_TSA_URL) failed: an incident for an operator."""


class _Loops(threading.local):
    """One event loop per thread for the signatures it makes: ``asyncio.run`` made a new loop for every signature and,
    putting the SIGINT handler back in a worker's main thread, formatted the finished task's repr (the whole signed
    PDF as text, 0.6 % of the signer's CPU in the pipeline bench)."""

    loop: asyncio.AbstractEventLoop | None = None

    def run(self, coroutine: Coroutine[object, object, T]) -> T:
        if self.loop is None:
            self.loop = asyncio.new_event_loop()
        return self.loop.run_until_complete(coroutine)


_loops = _Loops()


def sign(job: SigningJob) -> SigningResult:
    """Worker entry point: the PDF with one more signature."""
    try:
        return _loops.run(_sign(job))
    except (TimestampRequestError, OSError, TimeoutError) as exc:  # aiohttp's connection errors are OSErrors
        raise TimestampUnavailable(
            f"the time-stamping service {job.tsa_url} did not answer ({exc.__class__.__name__}: {exc})"[:500]
        ) from None
    except (PathBuildingError, PathValidationError) as exc:  # only the TSA's chain is checked unwrapped (see _long_term)
        raise TimestampUnavailable(
            f"the certificate of the time-stamping service {job.tsa_url} does not chain to PARAAF_TSA_ROOTS or is revoked ({exc})"[
                :500
            ]
        ) from None
    except (PKCS11Error, hsm.TokenUnavailable) as exc:
        raise SigningUnavailable(f"the PKCS#11 token did not sign ({exc.__class__.__name__}: {exc})"[:500]) from None


def _warm_up(font_path: str, token: hsm.TokenConfig | None) -> int:
    """Import what signing needs, make the stamp font and log in to the token, so the first signer does not wait for them."""
    stamp_font(font_path)
    if token is not None:
        hsm.session(token)
    return os.getpid()


class SigningPool:
    """Worker processes that sign (and validate), so the event loop never waits on a signature."""

    def __init__(self, workers: int) -> None:
        self._workers = workers
        self._pool = WorkerPool(workers, preload=(__name__,))
        self._turns: asyncio.Semaphore | None = None

    @property
    def workers(self) -> int:
        return self._workers

    def turn(self) -> asyncio.Semaphore:
        """One of ``workers`` turns at signing, taken before the caller opens its transaction: a signer waiting for a
        worker then holds no database connection. Without it, under load the waiting signatures held every connection
        of the pool, and the signing pages, the notifier's link API and the outbox relay waited behind them."""
        if self._turns is None:
            self._turns = asyncio.Semaphore(self._workers)
        return self._turns

    async def warm_up(self, font_path: str = DEFAULT_FONT, token: hsm.TokenConfig | None = None) -> None:
        await asyncio.gather(*(self._pool.run(_warm_up, font_path, token) for _ in range(self._workers)))

    async def sign(self, job: SigningJob) -> SigningResult:
        try:
            return await self._pool.run(sign, job, timeout=120)
        except (WorkerDied, WorkerTimedOut) as exc:
            raise SigningUnavailable(f"the signing process stopped ({exc})") from None

    async def run(self, function: Callable[..., T], *args: object) -> T:
        """Another CPU-bound function (validation) in the same workers."""
        return await self._pool.run(function, *args)

    def close(self) -> None:
        self._pool.close()
