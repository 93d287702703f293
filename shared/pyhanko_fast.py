"""Where pyHanko 0.38 spends CPU for nothing, measured with py-spy in the bare pyHanko loop (bench/limits.py) and
in the pipeline bench; what pyHanko reads and writes stays the same. The signer's signatures (services/signer/pades.py)
and intake's check of submitted PDFs (services/intake/pdf.py) use it.

* **The signing-certificate-v2 attribute** (RFC 5035), which every PAdES signature carries, is built anew by
  ``as_signing_certificate_v2`` for each signature out of the certificate's issuer name and serial number, and
  asn1crypto then re-encodes that freshly built tree field by field each time it is copied or dumped: into the
  signed attributes, into the ``SignerInfo``, when the signed attributes are hashed. That came to 46 % of a
  signature. :class:`ParsedSigningCertificate` hands pyHanko the same value parsed back from its DER, built once
  per certificate, which asn1crypto copies and dumps as the bytes it already holds.
* **Hex strings** (``<...>``): pyHanko reads them one byte at a time through ``read_non_whitespace``. Before each
  signature after the first, pyHanko reads the certification signature's ``/Contents`` (12 KiB reserved for the
  signature, written as 24 Ki hex digits) to check what the certification allows: 31 % of such a signature once
  the first cost was gone. :func:`read_hex_string` finds the closing ``>`` in one read and decodes in one call; anything
  it does not recognise as plain hex digits and PDF whitespace (a comment, a wrong byte, a missing ``>``) goes
  to pyHanko's own reader from the same position, which reads it, or raises its own error, as before.
* **Names** (``/Type``), the commonest token: pyHanko reads one byte at a time up to the next delimiter, then
  decodes the name byte by byte again. :func:`read_until_delimiter` finds the delimiter in one short read and
  :func:`decode_name` takes a name without ``#`` escapes or bytes a name may not hold in one call; anything else
  goes to pyHanko's own functions. Intake's check of every object of the bench's 30-page PDF took 6.6 ms of CPU
  instead of 9.0; the bare signing loop signed ~10 % more a second (it reads page trees for the verification
  footer and the signature fields).
* **Names written**: pyHanko writes a name one byte at a time, each checked for escaping. :func:`write_name` writes
  a name that needs no escape in one call (every name Paraaf and pyHanko write); any other goes to pyHanko's own.
  A signature's stamp writes several hundred names (its font's objects, its appearance): this was a stamped
  signature's largest cost over an invisible one, ~0.3 ms of its ~0.9 (cProfile, bench.signer's bare loops).
"""

import binascii
import io
import re
from functools import lru_cache
from typing import Any

from asn1crypto import tsp
from asn1crypto import x509 as asn1_x509
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.misc import PDF_DELIMITERS, PDF_WHITESPACE
from pyhanko.sign import attributes
from pyhanko.sign.general import as_signing_certificate_v2

__all__ = ["ParsedSigningCertificate", "decode_name", "install", "read_hex_string", "read_until_delimiter", "write_name"]

_HEX_DIGITS = re.compile(rb"[0-9A-Fa-f]*")
_FIRST_READ = 512  # most hex strings are short (/ID); a signature's /Contents is read in a few doublings
_pyhanko_read_hex_string = generic.read_hex_string_from_stream
_pyhanko_read_until_delimiter = generic.read_until_delimiter
_pyhanko_decode_name = generic._decode_name
_pyhanko_write_name = generic.NameObject.write_to_stream
_DELIMITER = re.compile(b"[" + re.escape(PDF_WHITESPACE + PDF_DELIMITERS) + b"]")
_TOKEN_READ = 64  # longer tokens (rare) go to pyHanko's reader
_PLAIN_NAME = re.compile(b"[" + re.escape(bytes(c for c in range(0x21, 0x7F) if c not in b"#" + PDF_DELIMITERS)) + b"]*")


@lru_cache(maxsize=512)
def _signing_certificate_v2(cert_der: bytes) -> tsp.SigningCertificateV2:
    built = as_signing_certificate_v2(asn1_x509.Certificate.load(cert_der))
    return tsp.SigningCertificateV2.load(built.dump())


class _ParsedSigningCertificateV2(attributes.SigningCertificateV2Provider):
    async def build_attr_value(self, dry_run: bool = False) -> tsp.SigningCertificateV2:
        return _signing_certificate_v2(self.signing_cert.dump())


class ParsedSigningCertificate:
    """Mixin for a pyHanko ``Signer``: its signing-certificate-v2 attribute is the parsed value, built once per
    certificate (see the module's docstring)."""

    def _signed_attr_providers(self, *args: Any, **kwargs: Any) -> Any:
        for provider in super()._signed_attr_providers(*args, **kwargs):  # type: ignore[misc]
            if type(provider) is attributes.SigningCertificateV2Provider:
                provider = _ParsedSigningCertificateV2(provider.signing_cert)
            yield provider


def read_hex_string(stream: io.IOBase) -> generic.ByteStringObject | generic.TextStringObject:
    """What ``pyhanko.pdf_utils.generic.read_hex_string_from_stream`` returns, for a stream at a ``<``."""
    start = stream.tell()
    stream.read(1)
    chunks: list[bytes] = []
    size = _FIRST_READ
    while True:
        chunk = stream.read(size)
        end = chunk.find(b">")
        if end >= 0:
            chunks.append(chunk[:end])
            stream.seek(end + 1 - len(chunk), io.SEEK_CUR)
            break
        if not chunk:
            stream.seek(start)
            return _pyhanko_read_hex_string(stream)
        chunks.append(chunk)
        size *= 2
    digits = b"".join(chunks).translate(None, PDF_WHITESPACE)
    if not _HEX_DIGITS.fullmatch(digits):
        stream.seek(start)
        return _pyhanko_read_hex_string(stream)
    if len(digits) % 2:
        digits += b"0"
    return generic.pdf_string(binascii.unhexlify(digits))


def read_until_delimiter(stream: io.IOBase) -> bytes:
    """What ``pyhanko.pdf_utils.misc.read_until_delimiter`` returns: the bytes up to the next PDF whitespace or
    delimiter, the stream left at it (or at the end)."""
    start = stream.tell()
    data = stream.read(_TOKEN_READ)
    found = _DELIMITER.search(data)
    if found is None:
        if len(data) < _TOKEN_READ:
            return data  # the end of the stream, where pyHanko's leaves it too
        stream.seek(start)
        return _pyhanko_read_until_delimiter(stream)
    stream.seek(start + found.start())
    return data[: found.start()]


def decode_name(name_bytes: bytes) -> generic.NameObject:
    """What ``pyhanko.pdf_utils.generic._decode_name`` returns for a name's bytes (after the ``/``)."""
    if _PLAIN_NAME.fullmatch(name_bytes):
        return generic.NameObject("/" + name_bytes.decode("ascii"))
    return _pyhanko_decode_name(name_bytes)


def write_name(name: generic.NameObject, stream: io.IOBase, handler: Any = None, container_ref: Any = None) -> None:
    """What ``NameObject.write_to_stream`` writes (or raises) for ``name``."""
    data = name.encode("utf8")
    if data[:1] == b"/" and _PLAIN_NAME.fullmatch(data, 1):
        stream.write(data)
    else:
        _pyhanko_write_name(name, stream, handler, container_ref)


def install() -> None:
    """pyHanko's object reader uses these (it looks each up in its module at each call), and its writer the last."""
    generic.read_hex_string_from_stream = read_hex_string
    generic.read_until_delimiter = read_until_delimiter
    generic._decode_name = decode_name
    generic.NameObject.write_to_stream = write_name  # type: ignore[method-assign]
