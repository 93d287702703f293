"""A third limit for the pipeline bench: pyHanko as released, tuned only as
issue 15 words its "bare pyHanko loop" — a cached key and reserved bytes, the
same stamp — and as ../shared/STACK.md measures it (134 ms stock, 24 ms
tuned, a signature).

bench/limits.py's bare loop runs the signer's own signing code, which since
the round of 2026-12-01 00:10 also carries Paraaf's pyHanko fast paths
(shared/pyhanko_fast.py: 2.8× faster). Those paths are installed into
pyHanko's modules for the whole process, so this loop runs in a process of
its own that never imports them (it checks), and signs through pyHanko's API
only:

* a ``SimpleSigner`` whose parsed key is kept and used by ``sign_raw`` (the
  one tuning STACK.md names), built once;
* ``bytes_reserved`` set (the signer's 12,288);
* the same documents, each signed as many times as its flow asks, one
  signature on top of the other: the first certifies (DocMDP, form filling
  allowed) and prepares a field for each signature to come, as the signer's
  does; each in the same stamp slot with the same text, border and 9-point
  font (the signer's reduced DejaVu), drawn by pyHanko's own font engine.

Not done here, as it is Paraaf's own work rather than pyHanko's: the
verification footer on every page, the white card under the stamp, the
``[SIGnn]`` placeholders. Leaving them out makes this loop faster, so a ratio
to it is no easier to reach.

Run by bench/pipeline.py through :func:`stock_pyhanko`; alone: ``python -m
bench.stock_pyhanko DIR SECONDS`` on a directory :func:`stock_pyhanko` writes.
"""

import asyncio
import io
import json
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from asn1crypto import keys as asn1_keys
from asn1crypto import x509 as asn1_x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.text import TextBoxStyle
from pyhanko.sign import fields, signers
from pyhanko.sign.fields import MDPPerm, SigFieldSpec
from pyhanko.stamp import TextStampStyle
from pyhanko_certvalidator.registry import SimpleCertificateStore

from services.signer.fonts import DEFAULT_FONT, StampFont, reduced_font
from services.signer.stamps import bottom_box, stamp_text
from shared.events import PersonRef

__all__ = ["BYTES_RESERVED", "stock_pyhanko"]

BYTES_RESERVED = 12288  # services.signer.pades.BYTES_RESERVED (a test holds the two equal)
_SIGNER = PersonRef(id="ann.aerts", name="Ann Aerts", email="ann.aerts@demo.paraaf.be", language="nl")

Credentials = tuple[bytes, bytes, tuple[bytes, ...]]


class _CachedKeySigner(signers.SimpleSigner):
    """STACK.md's tuning: ``SimpleSigner`` re-parses its key for every signature; this one signs with the key parsed once."""

    def __init__(self, key_der: bytes, cert_der: bytes, chain_der: tuple[bytes, ...]) -> None:
        key = serialization.load_der_private_key(key_der, password=None)
        assert isinstance(key, RSAPrivateKey)
        registry = SimpleCertificateStore.from_certs([asn1_x509.Certificate.load(c) for c in chain_der])
        super().__init__(
            signing_cert=asn1_x509.Certificate.load(cert_der),
            signing_key=asn1_keys.PrivateKeyInfo.load(key_der),
            cert_registry=registry,
        )
        self._key = key

    def sign_raw(self, data: bytes, digest_algorithm: str) -> bytes:
        return self._key.sign(data, padding.PKCS1v15(), getattr(hashes, digest_algorithm.upper())())


def _fields_prepared(writer: IncrementalPdfFileWriter, signatures: int) -> None:
    media_box = tuple(float(v) for v in writer.find_page_for_modification(-1)[0].get_object()["/MediaBox"])
    for number in range(1, signatures + 1):
        fields.append_signature_field(
            writer, SigFieldSpec(f"Signature{number}", on_page=-1, box=bottom_box(media_box, number - 1))  # type: ignore[arg-type]
        )


async def _chain(pdf: bytes, signatures: int, signer: signers.Signer, font: StampFont) -> bytes:
    style = TextStampStyle(stamp_text="%(paraaf)s", border_width=1, text_box_style=TextBoxStyle(font=font, font_size=9))
    for number in range(1, signatures + 1):
        writer = IncrementalPdfFileWriter(io.BytesIO(pdf), strict=False)
        if number == 1:
            _fields_prepared(writer, signatures)
        pdf_signer = signers.PdfSigner(
            signers.PdfSignatureMetadata(
                field_name=f"Signature{number}",
                md_algorithm="sha256",
                subfilter=fields.SigSeedSubFilter.PADES,
                name=_SIGNER.name,
                reason="Ondertekend",
                certify=number == 1,
                docmdp_permissions=MDPPerm.FILL_FORMS,
            ),
            signer=signer,
            stamp_style=style,
        )
        output = io.BytesIO()
        text = stamp_text(_SIGNER, None, datetime.now(UTC), "Europe/Brussels")
        await pdf_signer.async_sign_pdf(
            writer, bytes_reserved=BYTES_RESERVED, appearance_text_params={"paraaf": text}, output=output
        )
        pdf = output.getvalue()
    return pdf


async def _loop(documents: list[tuple[bytes, int]], credentials: Credentials, seconds: float) -> float:
    signer = _CachedKeySigner(*credentials)
    font = StampFont(reduced_font(DEFAULT_FONT))  # the signer's font; pyHanko's engine parses and subsets it each time
    await _chain(documents[0][0], 1, signer, font)  # warm-up, untimed
    signed, started = 0, time.perf_counter()
    while True:
        for pdf, signatures in documents:
            await _chain(pdf, signatures, signer, font)
            signed += signatures
        if time.perf_counter() - started >= seconds:
            return signed / (time.perf_counter() - started)


def _fast_paths_absent() -> None:
    own = (
        generic.read_hex_string_from_stream, generic.read_until_delimiter, generic._decode_name, generic.NameObject.write_to_stream
    )
    patched = [f.__qualname__ for f in own if not f.__module__.startswith("pyhanko")]
    if patched:
        raise SystemExit(f"pyHanko's own functions were replaced in this process ({patched}): not pyHanko as released")


async def stock_pyhanko(documents: list[tuple[bytes, int]], credentials: Credentials, seconds: float) -> float:
    """Signatures per second of the stock loop over ``documents`` (PDF, signatures it gets), for at least
    ``seconds``, in a fresh Python process."""
    with tempfile.TemporaryDirectory() as work:
        folder = Path(work)
        key, cert, chain = credentials
        (folder / "key.der").write_bytes(key)
        (folder / "cert.der").write_bytes(cert)
        for index, der in enumerate(chain):
            (folder / f"chain-{index}.der").write_bytes(der)
        for index, (pdf, _) in enumerate(documents):
            (folder / f"document-{index}.pdf").write_bytes(pdf)
        (folder / "signatures.json").write_text(json.dumps([signatures for _, signatures in documents]))
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.stock_pyhanko", work, str(seconds),
            stdout=asyncio.subprocess.PIPE, cwd=Path(__file__).resolve().parents[1],
        )
        out, _ = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"the stock pyHanko loop failed (exit {process.returncode})")
    return float(json.loads(out.decode().strip().splitlines()[-1])["signatures_per_second"])


def main(argv: list[str]) -> None:
    _fast_paths_absent()
    folder, seconds = Path(argv[0]), float(argv[1])
    counts = json.loads((folder / "signatures.json").read_text())
    documents = [((folder / f"document-{i}.pdf").read_bytes(), n) for i, n in enumerate(counts)]
    chain = tuple(p.read_bytes() for p in sorted(folder.glob("chain-*.der"), key=lambda p: int(p.stem.split("-")[1])))
    credentials = ((folder / "key.der").read_bytes(), (folder / "cert.der").read_bytes(), chain)
    rate = asyncio.run(_loop(documents, credentials, seconds))
    _fast_paths_absent()  # nothing imported on the way installed them
    print(json.dumps({"signatures_per_second": rate}))


if __name__ == "__main__":
    main(sys.argv[1:])
