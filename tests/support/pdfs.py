"""Small, valid PDFs made from scratch, so tests need no fixture files."""

__all__ = ["make_encrypted_pdf", "make_pdf"]


def make_pdf(pages: int = 1, text: str = "Paraaf test document", *, placeholder: str | None = None) -> bytes:
    """An A4 PDF with ``pages`` pages of Helvetica text (and ``placeholder`` on the last page)."""
    font_id = 3
    page_ids = [5 + 2 * i for i in range(pages)]
    body: dict[int, bytes] = {
        1: b"<< /Type /Catalog /Pages 2 0 R >>",
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
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = {}
    for obj_id in sorted(body):
        offsets[obj_id] = len(out)
        out += b"%d 0 obj\n" % obj_id + body[obj_id] + b"\nendobj\n"
    xref = len(out)
    size = max(body) + 1
    out += b"xref\n0 %d\n0000000000 65535 f \n" % size
    for obj_id in range(1, size):
        out += b"%010d 00000 n \n" % offsets[obj_id]
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (size, xref)
    return bytes(out)


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
