"""pyHanko's fast paths (shared/pyhanko_fast.py) give what pyHanko gives: the same objects, the same errors, the stream left at
the same place."""

import asyncio
import io
import random

import pytest
from asn1crypto import x509 as asn1_x509
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.misc import PdfReadError, PdfStreamError
from pyhanko.sign import attributes

from shared import pyhanko_fast
from tests.support.signing import SigningCity

_PYHANKO = pyhanko_fast._pyhanko_read_hex_string


def _both(data: bytes) -> tuple[object, object]:
    """(pyHanko's answer, ours) for a stream at the start of ``data``: each the object and where the stream was
    left, or the error raised."""
    answers = []
    for read in (_PYHANKO, pyhanko_fast.read_hex_string):
        stream = io.BytesIO(data)
        try:
            value = read(stream)
            answers.append((type(value), bytes(value.original_bytes), stream.tell()))
        except PdfStreamError as exc:
            answers.append((PdfStreamError, str(exc)))
    return answers[0], answers[1]


@pytest.mark.parametrize(
    "data",
    [
        b"<>",
        b"<48656C6C6F> rest",
        b"<48656c6c6f>",
        b"<4 8\n65\r6C\t6C\x0c6F\x00>",
        b"<486>",  # odd: a final 0 is implied
        b"<FEFF00480069>",  # UTF-16 text
        b"<48 % a comment > still a comment\n 69>",
        b"<48%>\n69>",
        b"<48G9>",
        b"<48(69)>",
        b"<4869",  # no end
        b"<",
    ],
)
def test_hex_strings_read_as_pyhanko_reads_them(data: bytes) -> None:
    pyhanko, ours = _both(data)
    assert ours == pyhanko


def test_long_and_random_hex_strings() -> None:
    """A signature's /Contents (32 Ki digits, over several reads), and strings with random whitespace and, now
    and then, a byte that is not allowed, placed anywhere."""
    rng = random.Random(15)
    cases = [b"<" + bytes(rng.getrandbits(8) for _ in range(16384)).hex().encode() + b">>>"]
    for _ in range(300):
        body = bytearray(rng.choice(b"0123456789abcdefABCDEF \n\r\t") for _ in range(rng.randrange(0, 3000)))
        if rng.random() < 0.2:
            at = rng.randrange(len(body) + 1)
            body[at:at] = bytes([rng.choice(b"xZ%(/")])
        cases.append(b"<" + bytes(body) + b"> /Next 1")
    for data in cases:
        pyhanko, ours = _both(data)
        assert ours == pyhanko, data[:80]


def _tokens(read: object, data: bytes) -> tuple[object, ...]:
    """Every token ``read`` finds reading ``data`` as pyHanko's name reader does, and where it leaves the stream."""
    stream, found = io.BytesIO(data), []
    while stream.tell() < len(data):
        token = read(stream)  # type: ignore[operator]
        found.append((token, stream.tell()))
        stream.read(1)  # over the delimiter
    return tuple(found)


def test_tokens_end_where_pyhanko_ends_them() -> None:
    rng = random.Random(8)
    alphabet = b"abcXYZ019.-_#" + bytes(range(0x80, 0x84)) + b" \n\r\t\f\x00()<>[]{}/%"
    cases = [b"", b"/", b"Type", b"Type/Page", b"x" * 63 + b" ", b"x" * 64, b"x" * 64 + b"/", b"x" * 500 + b">"]
    cases += [bytes(rng.choice(alphabet) for _ in range(rng.randrange(0, 200))) for _ in range(300)]
    for data in cases:
        assert _tokens(pyhanko_fast.read_until_delimiter, data) == _tokens(pyhanko_fast._pyhanko_read_until_delimiter, data), data


def _name(decode: object, data: bytes) -> object:
    try:
        name = decode(data)  # type: ignore[operator]
        return type(name), str(name)
    except PdfReadError as exc:
        return PdfReadError, str(exc)


@pytest.mark.parametrize(
    "data",
    [b"", b"Type", b"Font#20Name", b"A#2", b"A#zz", b"caf\xc3\xa9", b"caf\xe9", b"Sp ace", b"Tab\t", b"a(b", b"~!|"],
)
def test_names_decode_as_pyhanko_decodes_them(data: bytes) -> None:
    assert _name(pyhanko_fast.decode_name, data) == _name(pyhanko_fast._pyhanko_decode_name, data)


def test_every_byte_in_a_name_decodes_as_pyhanko_decodes_it() -> None:
    for byte in range(256):
        data = b"N" + bytes([byte]) + b"x"
        assert _name(pyhanko_fast.decode_name, data) == _name(pyhanko_fast._pyhanko_decode_name, data), byte


def test_the_object_reader_uses_the_fast_paths() -> None:
    pyhanko_fast.install()
    assert generic.read_hex_string_from_stream is pyhanko_fast.read_hex_string
    assert generic.read_until_delimiter is pyhanko_fast.read_until_delimiter
    assert generic._decode_name is pyhanko_fast.decode_name
    read = generic.read_object(
        io.BytesIO(b"<< /ID [<0A0B> <0c0d>] /Type/Page /N#61me 1 /Kids[/A/B] >>"), generic.Reference(1, 0)
    )
    assert [bytes(v.original_bytes) for v in read["/ID"]] == [b"\x0a\x0b", b"\x0c\x0d"]
    assert (read["/Type"], read["/Name"], list(read["/Kids"])) == ("/Page", 1, ["/A", "/B"])


def test_the_signing_certificate_attribute_is_the_bytes_pyhanko_builds() -> None:
    _key, cert_der, _chain = SigningCity().credentials("Ann Aerts", "algemeen directeur")
    cert = asn1_x509.Certificate.load(cert_der)

    async def attribute(provider: attributes.CMSAttributeProvider) -> bytes:
        built = await provider.get_attribute()
        assert built is not None
        return built.dump()

    pyhanko = asyncio.run(attribute(attributes.SigningCertificateV2Provider(cert)))
    ours = asyncio.run(attribute(pyhanko_fast._ParsedSigningCertificateV2(cert)))
    assert ours == pyhanko


def _name_written(write: object, name: str) -> object:
    stream = io.BytesIO()
    try:
        write(generic.NameObject(name), stream)  # type: ignore[operator]
    except Exception as exc:  # noqa: BLE001 - the error itself is compared
        return type(exc), str(exc)
    return stream.getvalue()


@pytest.mark.parametrize("name", ["/Type", "/Font#Name", "/Sp ace", "/caf\u00e9", "/a(b", "/~!|", "/", "Type", "", "/A/B"])
def test_names_are_written_as_pyhanko_writes_them(name: str) -> None:
    assert _name_written(pyhanko_fast.write_name, name) == _name_written(pyhanko_fast._pyhanko_write_name, name)


def test_every_character_in_a_name_is_written_as_pyhanko_writes_it() -> None:
    for code in [*range(256), 0x20AC, 0x1F600]:
        name = "/N" + chr(code) + "x"
        assert _name_written(pyhanko_fast.write_name, name) == _name_written(pyhanko_fast._pyhanko_write_name, name), code


def test_the_writer_uses_the_fast_path() -> None:
    pyhanko_fast.install()
    assert generic.NameObject.write_to_stream is pyhanko_fast.write_name
    written = io.BytesIO()
    generic.DictionaryObject({generic.pdf_name("/Type"): generic.pdf_name("/Font Name")}).write_to_stream(written)
    assert written.getvalue() == b"<<\n/Type /Font#20Name\n>>"
