"""The page pictures of the signing page: lossless, and grey only when the page has no colour."""

import asyncio
import io
from uuid import uuid4

import pypdfium2
import pytest
from PIL import Image, ImageChops

from services.signer.pades import sign
from services.signer.render import PAGE_WIDTH_PX, RenderPool, page_sizes, render_page, sizes_and_first_page
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


def _chain(pdf: bytes, planned: int | None, signatures: int, *, footer: bool) -> list[tuple[bytes, frozenset[int] | None]]:
    """Each version after ``pdf`` with the pages its signature said it changed."""
    city, versions, placeholders = SigningCity(), [(pdf, None)], None
    for number in range(1, signatures + 1):
        code = footer_text("nl", "https://paraaf.test/check", new_code(), new_secret()) if footer and number == 1 else None
        job = city.job(versions[-1][0], number, "Ann Aerts", "schepen", planned=planned, footer=code, placeholders=placeholders)
        result = sign(job)
        versions.append((result.pdf, result.changed_pages))
        placeholders = result.placeholders
    return versions


@pytest.mark.parametrize(
    ("pages", "planned", "signatures", "footer", "placeholder", "said"),
    [
        (3, 3, 3, True, None, [None, {2}, {2}]),  # the footer is on every page; the stamps on the last
        (3, 2, 3, False, None, [{2}, {2}, {2}]),  # certified without a footer; one signer more than planned: no stamp
        (3, None, 2, False, None, [{2}, {2}]),  # no count: each signature adds its own field
        (3, 2, 2, False, "[SIG02]", [{2}, {2}]),  # the second signature's place written in the text
        (1, 2, 2, False, None, [{0}, {0}]),
    ],
)
def test_a_signature_names_the_pages_it_changed_and_every_other_page_is_drawn_as_before(
    pages: int, planned: int | None, signatures: int, footer: bool, placeholder: str | None, said: list[set[int] | None]
) -> None:
    """What a signature says it changed is what PDFium draws differently: every page it does not name is the same
    picture, byte for byte, in the version before and after it (so the signing page may keep that picture), and a page
    with a new stamp is drawn differently."""
    versions = _chain(make_pdf(pages, text="Black on white", placeholder=placeholder), planned, signatures, footer=footer)
    assert [changed for _, changed in versions[1:]] == [frozenset(s) if s is not None else None for s in said]
    for (before, _), (after, changed) in zip(versions, versions[1:], strict=False):
        for index in range(pages):
            if changed is None or index in changed:
                continue
            assert render_page(after, index) == render_page(before, index), f"page {index + 1} drawn differently"
    stamped = [(before, after, changed) for (before, _), (after, changed) in zip(versions, versions[1:], strict=False)][:planned or 1]
    for before, after, changed in stamped:
        if changed is not None:
            assert all(render_page(after, index) != render_page(before, index) for index in changed), "the stamp drawn"


def test_a_version_that_kept_the_first_page_opens_with_the_pictures_of_the_one_before() -> None:
    """derive: the pictures at hand of the pages a signature did not change, and the sizes, carry over to the new
    version; a change to the first page, or an unknown one, carries nothing (its sizes come with its first picture)."""
    pool = RenderPool(1)
    try:
        pdf = make_pdf(3, text=f"derived {uuid4()}")
        sizes = asyncio.run(pool.page_sizes("v1", pdf))
        first = pool.known_page("v1", 0)
        assert first is not None
        pool.derive("v2", "v1", frozenset({2}))
        assert (pool.known_sizes("v2"), pool.known_page("v2", 0), pool.known_page("v2", 2)) == (sizes, first, None)
        for changed in (frozenset({0}), None):
            pool.derive("v3", "v1", changed)
            assert (pool.known_sizes("v3"), pool.known_page("v3", 0)) == (None, None)
        pool.derive("v4", "never drawn", frozenset({2}))
        assert pool.known_sizes("v4") is None
    finally:
        pool.close()
