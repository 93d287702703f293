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

from collections.abc import Iterator

from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign import fields

__all__ = ["stamp_footer"]

FONT_SIZE, MIN_FONT_SIZE, MARGIN, BASELINE = 7.0, 4.5, 28, 12
_FONT_NAME = "/PfVerify"
# Helvetica's advance widths are at most ~0.6 em for these characters: enough to keep the line on the page.
_EM_PER_CHAR = 0.56


_INHERITED = ("/Resources", "/MediaBox", "/CropBox", "/Rotate")


def _pages(node: generic.DictionaryObject, inherited: dict[str, generic.PdfObject]) -> Iterator[tuple[generic.IndirectObject, dict]]:
    """Every page (its reference) with the attributes it inherits, in one walk of the page tree: pyHanko's
    find_page_for_modification walks the tree anew for each page, which made 30 pages cost ~25 ms."""
    for kid_ref in node["/Kids"]:
        kid = kid_ref.get_object()
        attributes = {**inherited, **{key: kid[key] for key in _INHERITED if key in kid}}
        if kid.get("/Type") == "/Pages" or "/Kids" in kid:
            yield from _pages(kid, attributes)
        else:
            yield kid_ref, attributes


def _placement(attributes: dict) -> tuple[tuple[float, ...], float]:
    """The matrix to the shown page's bottom-left corner, upright, and the shown page's width."""
    llx, lly, urx, ury = (float(v) for v in attributes.get("/CropBox", attributes["/MediaBox"]))
    rotate = int(attributes.get("/Rotate", 0)) % 360
    matrices = {
        0: ((1, 0, 0, 1, llx, lly), urx - llx),
        90: ((0, 1, -1, 0, urx, lly), ury - lly),
        180: ((-1, 0, 0, -1, urx, ury), urx - llx),
        270: ((0, -1, 1, 0, llx, ury), ury - lly),
    }
    return matrices.get(rotate, matrices[0])


def _contents(page: generic.DictionaryObject) -> list[generic.PdfObject]:
    if "/Contents" not in page:
        return []
    raw = page.raw_get("/Contents")
    resolved = raw.get_object() if isinstance(raw, generic.IndirectObject) else raw
    return list(resolved) if isinstance(resolved, generic.ArrayObject) else [raw]


def _resources(attributes: dict, font: generic.IndirectObject) -> generic.DictionaryObject:
    """The page's resources and the footer's font, as a new dictionary: resources shared with other pages stay as they were."""
    resources = generic.DictionaryObject(attributes.get("/Resources") or {})
    fonts = generic.DictionaryObject(resources.get("/Font") or {})
    fonts[generic.pdf_name(_FONT_NAME)] = font
    resources[generic.pdf_name("/Font")] = fonts
    return resources


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
    for page_ref, attributes in _pages(writer.root["/Pages"], {}):
        page = page_ref.get_object()
        footer = writer.add_object(generic.StreamObject(stream_data=_footer_stream(text, *_placement(attributes))))
        page[generic.pdf_name("/Contents")] = generic.ArrayObject([opening, *_contents(page), footer])
        page[generic.pdf_name("/Resources")] = _resources(attributes, font)
        writer.mark_update(page_ref)
    return True
