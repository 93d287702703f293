"""The page pictures of the signing page: lossless, and grey only when the page has no colour."""

import io

import pypdfium2
from PIL import Image, ImageChops

from services.signer.pades import sign
from services.signer.render import PAGE_WIDTH_PX, page_sizes, render_page, sizes_and_first_page
from services.signer.verification import footer_text, new_code, new_secret
from tests.support.pdfs import make_pdf
from tests.support.signing import SigningCity

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


def _signed(pdf: bytes, signers: int) -> list[bytes]:
    """Every version of ``pdf`` through a flow of ``signers`` (the signer's own signing code, a test CA): the first
    signature also stamps the verification footer on every page."""
    city, versions = SigningCity(), [pdf]
    for number in range(1, signers + 1):
        footer = footer_text("nl", "https://paraaf.test/check", new_code(), new_secret()) if number == 1 else None
        versions.append(sign(city.job(versions[-1], number, "Ann Aerts", "schepen", planned=signers, footer=footer)).pdf)
    return versions


def test_a_page_with_signature_stamps_is_a_grey_picture_that_shows_them() -> None:
    """Black stamps on a black-and-white page come as 8-bit greys (PDFium draws no colour fringes around the stamps'
    text), and the foot of the page, blank before, carries them."""
    unsigned, *signed = _signed(make_pdf(1, text="Black on white"), 2)
    blank = Image.open(io.BytesIO(render_page(unsigned, 0))).convert("L")
    for version in signed:
        picture = Image.open(io.BytesIO(render_page(version, 0)))
        assert picture.mode == "P" and len(picture.getpalette() or []) == 3 * 256
        foot = (0, picture.height * 3 // 4, picture.width, picture.height)
        changed = ImageChops.difference(picture.convert("L"), blank).crop(foot)
        assert changed.getbbox() is not None and min(picture.convert("L").crop(foot).getdata()) < 64  # black ink


def test_the_sizes_and_the_first_page_from_one_opening_are_what_each_gives_alone() -> None:
    """The signing page's one job gives the sizes page_sizes gives and the picture render_page draws, byte for byte."""
    pdf = _signed(make_pdf(3, text="Black on white"), 2)[-1]
    assert sizes_and_first_page(pdf) == (page_sizes(pdf), render_page(pdf, 0))


def test_the_page_sizes_are_the_sizes_of_the_pictures_even_for_a_turned_page() -> None:
    """The sizes the signing page lays out with are those of the pictures drawn, a page turned a quarter included."""
    pdf = make_pdf(2).replace(b"/MediaBox [0 0 595 842]", b"/MediaBox [0 0 595 842] /Rotate 90", 1)
    pictures = [Image.open(io.BytesIO(render_page(pdf, index))).size for index in range(2)]
    assert pictures[0][0] > pictures[0][1] and pictures[1][0] < pictures[1][1]
    for (width, height), (drawn_width, drawn_height) in zip(page_sizes(pdf), pictures, strict=True):
        assert width == drawn_width and abs(height - drawn_height) <= 1  # PDFium rounds the height up


def test_a_picture_carries_nothing_of_the_page_drawn_before_it() -> None:
    """Pages are drawn one after the other into the same memory: a plain page after a coloured, longer one is the
    same picture as when drawn first."""
    plain, coloured = make_pdf(1, text="Black on white"), make_pdf(1, text=RED_BAND)
    longer = coloured.replace(b"/MediaBox [0 0 595 842]", b"/MediaBox [0 0 595 1200]")
    first = render_page(plain, 0)
    render_page(longer, 0)
    assert render_page(plain, 0) == first
