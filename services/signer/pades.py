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
"""

import asyncio
import io
import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import TypeVar

import pypdfium2
from asn1crypto import keys as asn1_keys
from asn1crypto import x509 as asn1_x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from pyhanko.pdf_utils.content import RawContent
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.layout import AxisAlignment, BoxConstraints, InnerScaling, Margins, SimpleBoxLayoutRule
from pyhanko.pdf_utils.text import TextBoxStyle
from pyhanko.sign import fields, signers
from pyhanko.sign.fields import MDPPerm, SigFieldSpec
from pyhanko.sign.timestamps.aiohttp_client import HTTPTimeStamper
from pyhanko.sign.timestamps.common_utils import TimestampRequestError
from pyhanko.stamp import TextStampStyle
from pyhanko_certvalidator.registry import SimpleCertificateStore

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
    "find_placeholders",
    "sign",
]

T = TypeVar("T")

# The CMS container is ~3.5 KB (RSA-2048 signer + RSA-3072 root); a
# timestamp token adds the TSA's signature and chain, ~3-6 KB more. Reserving
# enough means pyHanko signs once instead of once to measure and once for real.
BYTES_RESERVED = 8192
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


@dataclass(frozen=True)
class SigningResult:
    pdf: bytes
    field_name: str
    certified: bool  # this signature is the document's certification signature
    placeholders: tuple[Placeholder, ...]


class CachedKeySigner(signers.SimpleSigner):
    """SimpleSigner re-parses its key for every signature (~45 ms); this one keeps the parsed key."""

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


def _slot(writer: IncrementalPdfFileWriter, number: int, placeholders: tuple[Placeholder, ...]) -> tuple[int, Box]:
    """(page, box) of signature ``number``: its placeholder, else the next free slot at the bottom of the last page."""
    for placeholder in placeholders:
        if placeholder.number == number:
            return placeholder.page, placeholder.box
    taken = {p.number for p in placeholders}
    index = sum(1 for n in range(1, number) if n not in taken)
    page_ref, _ = writer.find_page_for_modification(-1)
    media_box = tuple(float(v) for v in page_ref.get_object()["/MediaBox"])
    return -1, bottom_box(media_box, index)


def _is_certified(writer: IncrementalPdfFileWriter) -> bool:
    try:
        return "/DocMDP" in writer.root["/Perms"]
    except KeyError:
        return False


def _stamp_style(font_path: str) -> TextStampStyle:
    font = stamp_font(font_path)
    # An opaque white card, so a placeholder text under the stamp does not show through.
    card = RawContent(
        b"1 1 1 rg 0 0 %d %d re f" % (STAMP_WIDTH, STAMP_HEIGHT), box=BoxConstraints(STAMP_WIDTH, STAMP_HEIGHT)
    )
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


def _field(writer: IncrementalPdfFileWriter, job: SigningJob, placeholders: tuple[Placeholder, ...]) -> tuple[bool, SigFieldSpec | None]:
    """(certify?, the field to add) for signature ``job.number``; the first of a planned set certifies
    and prepares a field for each signature to come."""
    name = field_name(job.number)
    empty = {f[0] for f in fields.enumerate_sig_fields(writer.prev, filled_status=False)}
    signed_before = any(True for _ in fields.enumerate_sig_fields(writer.prev, filled_status=True))
    if name in empty:
        return False, None  # prepared by the certification signature: fill it
    if not signed_before and job.planned:
        last = max([job.planned, job.number, *(p.number for p in placeholders)])
        for number in range(job.number, last + 1):
            page, box = _slot(writer, number, placeholders)
            fields.append_signature_field(writer, SigFieldSpec(field_name(number), on_page=page, box=box))
        return True, None
    if _is_certified(writer):
        # More signers than planned: a new visible field would break the
        # certification, so this signature goes in without a stamp.
        return False, SigFieldSpec(name, on_page=-1, box=None)
    page, box = _slot(writer, job.number, placeholders)
    return False, SigFieldSpec(name, on_page=page, box=box)


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
        signer=_signer(job.key_der, job.cert_der, job.chain_der),
        timestamper=HTTPTimeStamper(job.tsa_url, timeout=30) if job.tsa_url else None,
        stamp_style=_stamp_style(job.font_path),
        new_field_spec=new_field,
    )


async def _sign(job: SigningJob) -> SigningResult:
    writer = IncrementalPdfFileWriter(io.BytesIO(job.pdf), strict=False)
    placeholders = job.placeholders if job.placeholders is not None else find_placeholders(job.pdf)
    certify, new_field = _field(writer, job, placeholders)
    output = io.BytesIO()
    await _pdf_signer(job, certify, new_field).async_sign_pdf(
        writer,
        bytes_reserved=BYTES_RESERVED_TIMESTAMPED if job.tsa_url else BYTES_RESERVED,
        appearance_text_params={"paraaf": job.stamp_text},
        output=output,
    )
    return SigningResult(output.getvalue(), field_name(job.number), certify, placeholders)


class SigningUnavailable(RuntimeError):
    """Nothing was signed, for a reason that passes: the time-stamping service does not answer, a worker died."""


class TimestampUnavailable(SigningUnavailable):
    """Nothing was signed because the time-stamping service (PARAAF_TSA_URL) failed: an incident for an operator."""


def sign(job: SigningJob) -> SigningResult:
    """Worker entry point: the PDF with one more signature."""
    try:
        return asyncio.run(_sign(job))
    except (TimestampRequestError, OSError, TimeoutError) as exc:  # aiohttp's connection errors are OSErrors
        raise TimestampUnavailable(f"the time-stamping service {job.tsa_url} did not answer ({exc.__class__.__name__}: {exc})"[:500]) from None


def _warm_up(font_path: str) -> int:
    """Import what signing needs and make the stamp font, so the first signer does not wait ~1 s for it."""
    stamp_font(font_path)
    return os.getpid()


class SigningPool:
    """Worker processes that sign (and validate), so the event loop never waits on a signature."""

    def __init__(self, workers: int) -> None:
        self._workers = workers
        self._pool = WorkerPool(workers)

    @property
    def workers(self) -> int:
        return self._workers

    async def warm_up(self, font_path: str = DEFAULT_FONT) -> None:
        await asyncio.gather(*(self._pool.run(_warm_up, font_path) for _ in range(self._workers)))

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
