"""The page pictures of the signing page: lossless, and grey only when the page has no colour."""

import io

import pypdfium2
from PIL import Image, ImageChops

from services.signer.render import PAGE_WIDTH_PX, render_page
from tests.support.pdfs import make_pdf

# A red band across the foot of the page, written into the page's text (make_pdf puts ``text`` inside ``( ) Tj``).
RED_BAND = "red band) Tj ET 1 0 0 rg 0 0 595 100 re f BT /F1 14 Tf 72 740 Td (with a red band"


def _as_drawn(pdf: bytes) -> Image.Image:
    document = pypdfium2.PdfDocument(pdf)
    try:
        page = document[0]
        return page.render(scale=PAGE_WIDTH_PX / page.get_size()[0]).to_pil().convert("RGB")
    finally:
        document.close()


def test_a_page_without_colour_is_a_grey_picture_with_the_same_pixels() -> None:
    """Black text on white comes as a PNG of 8-bit greys (a palette, no RGB), pixel for pixel what PDFium drew."""
    pdf = make_pdf(1, text="Black on white")
    picture = Image.open(io.BytesIO(render_page(pdf, 0)))
    assert picture.mode == "P" and len(picture.getpalette() or []) == 3 * 256
    assert ImageChops.difference(picture.convert("RGB"), _as_drawn(pdf)).getbbox() is None


def test_a_page_with_colour_keeps_its_colour() -> None:
    """A red band stays red: the picture is RGB, pixel for pixel what PDFium drew."""
    pdf = make_pdf(1, text=RED_BAND)
    picture = Image.open(io.BytesIO(render_page(pdf, 0)))
    assert picture.mode == "RGB"
    assert picture.getpixel((PAGE_WIDTH_PX // 2, picture.height - 10)) == (255, 0, 0)
    assert ImageChops.difference(picture, _as_drawn(pdf)).getbbox() is None
