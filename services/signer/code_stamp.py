"""The verification footer (check address, code and secret) written on every
page of a PDF, in the incremental update that the document's first signature
signs, so that signature and every later one cover it.

It is plain page content in Helvetica (a standard font: nothing embedded,
WinAnsi covers Dutch and French), drawn in the bottom margin under the
signature stamps, upright as the page is shown (/Rotate respected), and kept
apart from the page's own graphics state (its content is wrapped in q ... Q).
Content added before a certification signature is part of what it certifies,
so DocMDP is not at stake; a PDF that already holds someone else's signature
is left alone (new page content would break that signature's policy).
"""

from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign import fields

__all__ = ["stamp_footer"]

FONT_SIZE, MIN_FONT_SIZE, MARGIN, BASELINE = 7.0, 4.5, 28, 12
_FONT_NAME = "/PfVerify"
# Helvetica's advance widths are at most ~0.6 em for these characters: enough to keep the line on the page.
_EM_PER_CHAR = 0.56


def _inherited(page: generic.DictionaryObject, key: str) -> generic.PdfObject | None:
    node: generic.DictionaryObject | None = page
    while node is not None:
        if key in node:
            return node[key]
        node = node["/Parent"] if "/Parent" in node else None
    return None


def _placement(page: generic.DictionaryObject) -> tuple[tuple[float, ...], float]:
    """The matrix to the shown page's bottom-left corner, upright, and the shown page's width."""
    box = _inherited(page, "/CropBox") or _inherited(page, "/MediaBox")
    llx, lly, urx, ury = (float(v) for v in box)  # type: ignore[union-attr]
    rotate = int(_inherited(page, "/Rotate") or 0) % 360
    matrices = {
        0: ((1, 0, 0, 1, llx, lly), urx - llx),
        90: ((0, 1, -1, 0, urx, lly), ury - lly),
        180: ((-1, 0, 0, -1, urx, ury), urx - llx),
        270: ((0, -1, 1, 0, llx, ury), ury - lly),
    }
    return matrices.get(rotate, matrices[0])


def _pdf_string(text: str) -> bytes:
    raw = text.encode("cp1252", errors="replace")
    return b"(" + raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)") + b")"


def _footer_stream(text: str, matrix: tuple[float, ...], width: float) -> bytes:
    size = max(MIN_FONT_SIZE, min(FONT_SIZE, (width - 2 * MARGIN) / (_EM_PER_CHAR * max(1, len(text)))))
    cm = " ".join(f"{v:g}" for v in matrix)
    return (
        b"Q q %s cm BT %s %.2f Tf 0.25 g %d %d Td %s Tj ET Q"
        % (cm.encode(), _FONT_NAME.encode(), size, MARGIN, BASELINE, _pdf_string(text))
    )


def _signed_already(writer: IncrementalPdfFileWriter) -> bool:
    return any(True for _ in fields.enumerate_sig_fields(writer.prev, filled_status=True))


def stamp_footer(writer: IncrementalPdfFileWriter, text: str) -> bool:
    """``text`` at the bottom of every page, in the writer's pending update; False when the PDF was signed before."""
    if _signed_already(writer):
        return False
    font = writer.add_object(generic.DictionaryObject({
        generic.pdf_name("/Type"): generic.pdf_name("/Font"),
        generic.pdf_name("/Subtype"): generic.pdf_name("/Type1"),
        generic.pdf_name("/BaseFont"): generic.pdf_name("/Helvetica"),
        generic.pdf_name("/Encoding"): generic.pdf_name("/WinAnsiEncoding"),
    }))
    opening = writer.add_object(generic.StreamObject(stream_data=b"q\n"))
    for index in range(int(writer.root["/Pages"]["/Count"])):
        page_ref, _ = writer.find_page_for_modification(index)
        matrix, width = _placement(page_ref.get_object())
        footer = writer.add_object(generic.StreamObject(stream_data=_footer_stream(text, matrix, width)))
        resources = generic.DictionaryObject({
            generic.pdf_name("/Font"): generic.DictionaryObject({generic.pdf_name(_FONT_NAME): font})
        })
        writer.add_stream_to_page(index, opening, prepend=True)
        writer.add_stream_to_page(index, footer, resources=resources)
    return True
