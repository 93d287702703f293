"""PAdES signing with pyHanko, run in worker processes (signing is CPU-bound).

:func:`sign` is what a worker runs: it takes plain bytes (picklable) and
returns the PDF with one more signature, added as an incremental update so
every earlier signature stays valid. Each worker keeps the parsed key and
certificate of every signer it has seen, so no key is parsed per signature.
"""

import asyncio
import hashlib
import io
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from multiprocessing import get_context

from asn1crypto import keys as asn1_keys
from asn1crypto import x509 as asn1_x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign import fields, signers
from pyhanko.stamp import TextStampStyle
from pyhanko_certvalidator.registry import SimpleCertificateStore

__all__ = ["SigningJob", "SigningPool", "sign"]

BYTES_RESERVED = 16384
STAMP_WIDTH, STAMP_HEIGHT, MARGIN = 180, 64, 28


@dataclass(frozen=True)
class SigningJob:
    pdf: bytes
    key_der: bytes  # unencrypted PKCS#8; only ever in memory
    cert_der: bytes
    chain_der: tuple[bytes, ...]
    field_name: str
    stamp_text: str
    signer_name: str
    reason: str
    index: int  # 0 for the first signature; places the stamp


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
    assert isinstance(key, RSAPrivateKey)
    registry = SimpleCertificateStore.from_certs([asn1_x509.Certificate.load(c) for c in chain_der])
    return CachedKeySigner(asn1_x509.Certificate.load(cert_der), key, registry)


def _stamp_box(writer: IncrementalPdfFileWriter, index: int) -> tuple[int, int, int, int]:
    """Stamps fill the bottom of the last page left to right, then upwards."""
    page_ref, _ = writer.find_page_for_modification(-1)
    llx, lly, urx, _ury = (float(v) for v in page_ref.get_object()["/MediaBox"])
    per_row = max(1, int((urx - llx - 2 * MARGIN) // (STAMP_WIDTH + 8)))
    row, column = divmod(index, per_row)
    x = int(llx + MARGIN + column * (STAMP_WIDTH + 8))
    y = int(lly + MARGIN + row * (STAMP_HEIGHT + 8))
    return (x, y, x + STAMP_WIDTH, y + STAMP_HEIGHT)


async def _sign(job: SigningJob) -> bytes:
    writer = IncrementalPdfFileWriter(io.BytesIO(job.pdf), strict=False)
    pdf_signer = signers.PdfSigner(
        signers.PdfSignatureMetadata(
            field_name=job.field_name,
            md_algorithm="sha256",
            subfilter=fields.SigSeedSubFilter.PADES,
            name=job.signer_name,
            reason=job.reason,
        ),
        signer=_signer(job.key_der, job.cert_der, job.chain_der),
        stamp_style=TextStampStyle(stamp_text="%(paraaf)s", border_width=1),
        new_field_spec=fields.SigFieldSpec(
            sig_field_name=job.field_name, on_page=-1, box=_stamp_box(writer, job.index)
        ),
    )
    output = io.BytesIO()
    await pdf_signer.async_sign_pdf(
        writer, bytes_reserved=BYTES_RESERVED, appearance_text_params={"paraaf": job.stamp_text}, output=output
    )
    return output.getvalue()


def sign(job: SigningJob) -> bytes:
    """Worker entry point: the signed PDF."""
    return asyncio.run(_sign(job))


class SigningPool:
    """Worker processes that sign, so the event loop never waits on a signature."""

    def __init__(self, workers: int) -> None:
        self._executor = ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"))

    async def sign(self, job: SigningJob) -> bytes:
        return await asyncio.get_running_loop().run_in_executor(self._executor, sign, job)

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)


def fingerprint(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
