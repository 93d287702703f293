"""The demo's documents: one-page A4 PDFs written from scratch (Helvetica text, nothing else), so the demo needs no
fixture files; a line may be a signature marker such as ``[SIG01]`` where the signer puts that signature's stamp."""

__all__ = ["letter"]


def _escaped(line: str) -> bytes:
    return line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)").encode("cp1252", "replace")


def letter(heading: str, lines: list[str]) -> bytes:
    """A one-page PDF with ``heading`` in bold and ``lines`` under it (an empty line leaves a gap)."""
    text = b"BT /F2 16 Tf 72 770 Td (" + _escaped(heading) + b") Tj /F1 11 Tf 0 -34 Td"
    for line in lines:
        text += b" (" + _escaped(line) + b") Tj 0 -18 Td"
    text += b" ET"
    objects = {
        1: b"<< /Type /Catalog /Pages 2 0 R >>",
        2: b"<< /Type /Pages /Kids [5 0 R] /Count 1 >>",
        3: b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
        4: b"<< /Length %d >>\nstream\n" % len(text) + text + b"\nendstream",
        5: b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R"
        b" /Resources << /Font << /F1 3 0 R /F2 6 0 R >> >> >>",
        6: b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica-Bold /Encoding /WinAnsiEncoding >>",
    }
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = {}
    for number, body in objects.items():
        offsets[number] = len(out)
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offsets[n] for n in sorted(offsets))
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)
