"""Independent checks of signed PDFs: pyHanko's validator and poppler's pdfsig."""

import io
import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from asn1crypto import pem
from asn1crypto import x509 as asn1_x509
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation import async_validate_pdf_signature
from pyhanko_certvalidator import ValidationContext

__all__ = ["PdfsigReport", "PyhankoReport", "pdfsig", "pdfsig_all", "pyhanko_validate"]


@dataclass(frozen=True)
class PyhankoReport:
    field: str
    signer: str
    intact: bool
    valid: bool
    trusted: bool
    coverage: str
    modification_level: str


def _root(root_pem: bytes) -> asn1_x509.Certificate:
    _, _, der = pem.unarmor(root_pem)
    return asn1_x509.Certificate.load(der)


async def pyhanko_validate(pdf: bytes, root_pem: bytes) -> list[PyhankoReport]:
    """pyHanko's verdict on every signature, trusting only ``root_pem`` (a document timestamp, B-LTA's, is not
    a person's signature: tests/integration/test_long_term_validation.py checks those)."""
    reader = PdfFileReader(io.BytesIO(pdf), strict=False)
    reports = []
    for embedded in reader.embedded_regular_signatures:
        context = ValidationContext(trust_roots=[_root(root_pem)], allow_fetching=False)
        status = await async_validate_pdf_signature(embedded, context)
        reports.append(
            PyhankoReport(
                field=embedded.field_name,
                signer=status.signing_cert.subject.native.get("common_name", ""),
                intact=status.intact,
                valid=status.valid,
                trusted=status.trusted,
                coverage=status.coverage.name,
                modification_level=status.modification_level.name if status.modification_level else "",
            )
        )
    return reports


@dataclass(frozen=True)
class PdfsigReport:
    signer: str
    signature_valid: bool
    certificate_trusted: bool
    raw: str


def pdfsig(pdf: bytes, root_pem: bytes) -> list[PdfsigReport]:
    """poppler's pdfsig (an independent implementation), with ``root_pem`` in its NSS trust store.

    pdfsig exits 0 even for a broken signature, so its text is parsed.
    """
    return pdfsig_all([pdf], root_pem)[0]


def pdfsig_all(pdfs: Sequence[bytes], root_pem: bytes) -> list[list[PdfsigReport]]:
    """pdfsig on each PDF, with one NSS trust store for all of them (setting one up is most of pdfsig's cost)."""
    if shutil.which("pdfsig") is None or shutil.which("certutil") is None:
        raise RuntimeError("pdfsig and certutil are needed: apt-get install poppler-utils libnss3-tools")
    with tempfile.TemporaryDirectory() as tmp:
        nss = _nss_store(Path(tmp), root_pem)
        return [_pdfsig_one(nss, Path(tmp) / "document.pdf", pdf) for pdf in pdfs]


def _nss_store(tmp: Path, root_pem: bytes) -> Path:
    nss, root = tmp / "nss", tmp / "root.pem"
    nss.mkdir()
    root.write_bytes(root_pem)
    subprocess.run(["certutil", "-N", "-d", f"sql:{nss}", "--empty-password"], check=True, capture_output=True)
    subprocess.run(
        ["certutil", "-A", "-d", f"sql:{nss}", "-n", "Paraaf Root", "-t", "C,C,C", "-a", "-i", str(root)],
        check=True,
        capture_output=True,
    )
    return nss


_SIGNATURE_TYPES = {"ETSI.CAdES.detached", "adbe.pkcs7.detached", "adbe.pkcs7.sha1"}  # a person's signature, not a timestamp


def _pdfsig_one(nss: Path, document: Path, pdf: bytes) -> list[PdfsigReport]:
    document.write_bytes(pdf)
    result = subprocess.run(["pdfsig", "-nssdir", f"sql:{nss}", str(document)], capture_output=True, text=True, check=False)
    output = result.stdout
    reports = []
    for block in re.split(r"^Signature #\d+:", output, flags=re.M)[1:]:
        if "The signature form field is not signed." in block:
            continue  # a field prepared for a later signer, not a signature
        kind = re.search(r"Signature Type: (\S+)", block)
        if kind and kind.group(1) not in _SIGNATURE_TYPES:
            continue  # a document timestamp (B-LTA), which this pdfsig cannot validate; not a person's signature
        signer = re.search(r"Signer Certificate Common Name: (.*)", block)
        reports.append(
            PdfsigReport(
                signer=signer.group(1).strip() if signer else "",
                signature_valid="Signature Validation: Signature is Valid." in block,
                certificate_trusted="Certificate Validation: Certificate is Trusted." in block,
                raw=block,
            )
        )
    return reports
