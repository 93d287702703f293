"""What intake accepts as a PDF, pure: readable with the library that will sign
it, unencrypted, within the size limit, free of active content (scripts,
launch actions, attached files), and not a decompression bomb. Runs in a
worker process with a time and memory limit (``shared/workers.py``), so a
hostile file costs a refusal, never the service.

Streams are measured, not unpacked: a FlateDecode stream is inflated in
chunks that are counted and dropped, so a 1 GiB stream of zeros costs a
megabyte of memory and is refused when the document passes the limit.
"""

import io
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.reader import PdfFileReader

from shared import pyhanko_fast
from shared.errors import CodedError

__all__ = ["ACTIVE_ACTIONS", "ACTIVE_KEYS", "Limits", "PdfInfo", "describe_size", "inspect_pdf", "ready"]

# Keys and action types that make a PDF do something when opened or clicked, or carry other files.
ACTIVE_KEYS = frozenset({"/JS", "/JavaScript", "/EmbeddedFiles", "/EF", "/RichMedia", "/XFA"})
ACTIVE_ACTIONS = frozenset({"/JavaScript", "/Launch", "/SubmitForm", "/ImportData", "/RichMediaExecute"})
_CHUNK = 1_048_576

pyhanko_fast.install()  # names and hex strings read in one go: every object of a submitted PDF is read here


@dataclass(frozen=True)
class Limits:
    max_bytes: int
    max_decoded_bytes: int = 256 * _CHUNK

    @property
    def max_body_bytes(self) -> int:
        """The longest submission message: the PDF in base64 and a megabyte of JSON around it."""
        return self.max_bytes * 4 // 3 + _CHUNK


@dataclass(frozen=True)
class PdfInfo:
    page_count: int


def ready() -> bool:
    """Run once in each worker at start, so this module and pyHanko are imported before the first submission."""
    return True


def describe_size(n: int) -> str:
    return f"{n / _CHUNK:.1f} MB" if n >= _CHUNK else f"{n / 1024:.0f} KB"


def inspect_pdf(data: bytes, limits: Limits) -> PdfInfo:
    """Refuse what is not a readable, unencrypted, passive PDF within ``limits``."""
    if len(data) > limits.max_bytes:
        raise CodedError("too_large", f"the PDF is {describe_size(len(data))}; the limit is {describe_size(limits.max_bytes)}")
    if b"%PDF-" not in data[:1024]:
        raise CodedError("not_pdf", "the file is not a PDF (it does not start with %PDF-)")
    try:
        return _read(data, limits)
    except CodedError:
        raise
    except RecursionError:
        raise CodedError("broken_pdf", "the PDF cannot be read: its objects are nested too deeply") from None
    except MemoryError:
        raise CodedError("pdf_too_complex", "the PDF needs more memory to read than a document may take") from None
    except Exception as exc:  # the parser's edge: whatever a damaged file makes it raise (PdfError, even AssertionError)
        detail = f"{exc.__class__.__name__}: {exc}" if str(exc) else exc.__class__.__name__
        raise CodedError("broken_pdf", f"the PDF cannot be read ({detail})") from None


def _read(data: bytes, limits: Limits) -> PdfInfo:
    reader = PdfFileReader(io.BytesIO(data), strict=False)
    if reader.encrypt_dict is not None:
        raise CodedError("encrypted_pdf", "the PDF is encrypted or password-protected; send it unprotected")
    page_count = int(reader.root["/Pages"]["/Count"])
    reader.root["/Pages"]["/Kids"][0].get_object()
    if page_count < 1:
        raise CodedError("broken_pdf", "the PDF has no pages")
    _check_objects(reader, limits, len(data))
    return PdfInfo(page_count=page_count)


def _check_objects(reader: PdfFileReader, limits: Limits, file_size: int) -> None:
    decoded = 0
    for obj in _reachable(reader.root):
        if isinstance(obj, generic.DictionaryObject):
            _refuse_active(obj)
        if isinstance(obj, generic.StreamObject):
            decoded += _inflated_size(obj, limits.max_decoded_bytes - decoded)
            if decoded > limits.max_decoded_bytes:
                raise CodedError(
                    "decompression_bomb",
                    f"the PDF's compressed streams unpack to more than {describe_size(limits.max_decoded_bytes)}"
                    f" (from a {describe_size(file_size)} file); send the document without them",
                )


def _reachable(root: generic.PdfObject) -> Iterator[generic.PdfObject]:
    """Every object reachable from ``root``, each once, without recursion (a deep array must not overflow us)."""
    stack: list[generic.PdfObject] = [root]
    seen: set[tuple[int, int]] = set()
    while stack:
        obj = stack.pop()
        if isinstance(obj, generic.IndirectObject):
            if (obj.idnum, obj.generation) in seen:
                continue
            seen.add((obj.idnum, obj.generation))
            obj = obj.get_object()
        yield obj
        if isinstance(obj, dict):
            stack.extend(dict.values(obj))  # raw values: indirect references stay references
        elif isinstance(obj, list):
            stack.extend(list.__iter__(obj))


def _refuse_active(obj: generic.DictionaryObject) -> None:
    found = sorted(ACTIVE_KEYS.intersection(dict.keys(obj)))
    action, kind = dict.get(obj, "/S"), dict.get(obj, "/Type")
    if action in ACTIVE_ACTIONS:
        found.append(f"a {action} action")
    if kind == "/EmbeddedFile":
        found.append("an embedded file")
    if found:
        raise CodedError(
            "active_content",
            f"the PDF holds active content ({', '.join(found)}); Paraaf signs no PDF that can run code, start"
            " programs or carry attached files: print or export it to PDF again without them",
        )


def _inflated_size(stream: generic.StreamObject, budget: int) -> int:
    """How many bytes a FlateDecode stream unpacks to, counting at most just past ``budget``; 0 for other filters."""
    filters = dict.get(stream, "/Filter")
    first = filters[0] if isinstance(filters, list) and filters else filters
    if first not in ("/FlateDecode", "/Fl"):
        return 0
    inflater, data, total = zlib.decompressobj(), stream.encoded_data, 0
    try:
        while data and total <= budget:
            total += len(inflater.decompress(data, _CHUNK))
            data = inflater.unconsumed_tail
    except zlib.error:
        pass  # a damaged stream is the viewer's problem, as it is in every PDF reader; it is not a bomb
    return total
