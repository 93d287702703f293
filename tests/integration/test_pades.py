"""PAdES signatures as the signing workers make them, checked by pyHanko and by
poppler's pdfsig (an independent implementation), with real keys from
Paraaf's own certificate authority code."""

import asyncio
import io

import pypdfium2
import pytest
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader

from services.signer.code_stamp import stamp_footer
from services.signer.pades import SigningResult, sign
from services.signer.verify import load_roots, verify_pdf_async
from tests.support.pdfs import make_pdf
from tests.support.signing import SigningCity, flip_signed_byte
from tests.support.tsa import TimestampAuthority
from tests.support.validate import pdfsig, pyhanko_validate

SIGNERS = [
    ("Ann Aérts", "algemeen directeur"),
    ("Bart Baert", "burgemeester"),
    ("Sofie Smet", "schepen"),
    ("Marc Müller", "schepen"),
    ("David De Wit", "adjunct-algemeen directeur"),
]


@pytest.fixture(scope="module", params=["file keys", "SoftHSM2"])
def city(request: pytest.FixtureRequest) -> SigningCity:
    """Every test twice: keys as files, and keys made and used in a PKCS#11 token."""
    return SigningCity(token=request.getfixturevalue("softhsm").config if request.param == "SoftHSM2" else None)


def _chain(city: SigningCity, pdf: bytes, count: int, **options: object) -> list[SigningResult]:
    results = []
    placeholders = None
    for number, (name, title) in enumerate(SIGNERS[:count], start=1):
        result = sign(city.job(pdf, number, name, title, placeholders=placeholders, **options))
        results.append(result)
        pdf, placeholders = result.pdf, result.placeholders
    return results


def _stamp_text(pdf: bytes) -> str:
    """The text a reader sees on the last page, signature stamps included (flattened the way a printer would)."""
    document = pypdfium2.PdfDocument(pdf)
    document.init_forms()
    page = document[len(document) - 1]
    page.flatten()
    page = document[len(document) - 1]
    return page.get_textpage().get_text_range()


async def test_five_certified_signatures_each_keep_every_earlier_one_valid_in_pyhanko_and_pdfsig(city: SigningCity) -> None:
    """Five signers one after the other: after each, every signature so far is intact, trusted and covers its revision; pdfsig accepts all five."""
    results = await asyncio.to_thread(_chain, city, make_pdf(3), 5, planned=5)
    assert [r.certified for r in results] == [True, False, False, False, False]
    for count, result in enumerate(results, start=1):
        reports = await pyhanko_validate(result.pdf, city.root_pem)
        assert [r.signer for r in reports] == [name for name, _ in SIGNERS[:count]]
        assert all(r.intact and r.valid and r.trusted for r in reports), reports
        assert [r.coverage for r in reports] == ["ENTIRE_REVISION"] * (count - 1) + ["ENTIRE_FILE"]
        assert all(r.modification_level in ("NONE", "FORM_FILLING") for r in reports), reports
    poppler = pdfsig(results[-1].pdf, city.root_pem)
    assert [r.signer for r in poppler] == [name for name, _ in SIGNERS]
    assert all(r.signature_valid and r.certificate_trusted for r in poppler), [r.raw for r in poppler]


async def test_flipping_one_signed_byte_makes_pyhanko_and_pdfsig_report_tampering(city: SigningCity) -> None:
    """One byte of page text changed after three signatures: both validators call every signature broken."""
    signed = (await asyncio.to_thread(_chain, city, make_pdf(1), 3, planned=3))[-1].pdf
    tampered = flip_signed_byte(signed)
    assert all(not r.intact for r in await pyhanko_validate(tampered, city.root_pem))
    poppler = pdfsig(tampered, city.root_pem)
    assert len(poppler) == 3 and not any(r.signature_valid for r in poppler), [r.raw for r in poppler]
    assert all("Digest Mismatch" in r.raw for r in poppler)


async def test_without_a_known_signature_count_approval_signatures_still_chain_validly(city: SigningCity) -> None:
    """When the router does not say how many will sign, each signer gets a new field and both validators accept all three."""
    results = await asyncio.to_thread(_chain, city, make_pdf(1), 3)
    assert not any(r.certified for r in results)
    reports = await pyhanko_validate(results[-1].pdf, city.root_pem)
    assert all(r.intact and r.trusted and r.modification_level in ("NONE", "FORM_FILLING") for r in reports)
    assert all(r.signature_valid and r.certificate_trusted for r in pdfsig(results[-1].pdf, city.root_pem))


async def test_a_content_change_after_a_certification_signature_is_reported_as_such(city: SigningCity) -> None:
    """An incremental update that rewrites page text after the first signature: the report says content changed after signing."""
    signed = (await asyncio.to_thread(_chain, city, make_pdf(1), 1, planned=2))[0].pdf
    writer = IncrementalPdfFileWriter(io.BytesIO(signed), strict=False)
    page = writer.root["/Pages"]["/Kids"][0].get_object()
    forged = page["/Contents"].get_object().data.replace(b"Paraaf test document", b"Paraaf fake document")
    page["/Contents"] = writer.add_object(generic.StreamObject(stream_data=forged))
    writer.update_container(page)
    out = io.BytesIO()
    writer.write(out)
    report = await verify_pdf_async(out.getvalue(), load_roots(city.root_pem))
    assert not report.ok
    assert report.signatures[0].intact and "content changed after signing" in report.signatures[0].problems


async def test_stamps_show_non_ascii_names_function_and_substitution(city: SigningCity) -> None:
    """The stamp reads "Ann Aérts", "Marc Müller" and "wnd. burgemeester" as a reader sees them, in the embedded DejaVu font."""
    pdf = make_pdf(1)
    first = await asyncio.to_thread(
        sign, city.job(pdf, 1, "Ann Aérts", "algemeen directeur", planned=2, stamp_text="Ann Aérts\nalgemeen directeur")
    )
    second = await asyncio.to_thread(
        sign,
        city.job(
            first.pdf, 2, "Marc Müller", "schepen", planned=2, placeholders=first.placeholders,
            stamp_text="Marc Müller\nschepen\nwnd. burgemeester",
        ),
    )
    text = _stamp_text(second.pdf)
    assert "Ann Aérts" in text and "Marc Müller" in text and "wnd. burgemeester" in text
    assert b"DejaVuSans" in second.pdf and b"/FontFile2" in second.pdf


async def test_a_placeholder_in_the_pdf_carries_the_stamp_of_that_signature(city: SigningCity) -> None:
    """A PDF with [SIG02] on its last page: the second signature's field sits on that text, the first goes to the bottom."""
    pdf = make_pdf(2, placeholder="[SIG02]")
    results = await asyncio.to_thread(_chain, city, pdf, 2, planned=2)
    assert [p.number for p in results[0].placeholders] == [2]
    reader = PdfFileReader(io.BytesIO(results[-1].pdf), strict=False)
    rects = {
        str(f["/T"]): [float(v) for v in f["/Rect"]] for f in (r.get_object() for r in reader.root["/AcroForm"]["/Fields"])
    }
    # make_pdf puts the placeholder as the second text line (baseline 746) at x = 72
    assert rects["Signature2"][0] <= 72 <= rects["Signature2"][2] and rects["Signature2"][1] < 746 < rects["Signature2"][3]
    assert rects["Signature1"][3] < 200, "without a placeholder the stamp goes to the bottom of the page"


async def test_with_a_timestamp_authority_each_signature_carries_a_trusted_rfc3161_timestamp(city: SigningCity) -> None:
    """PARAAF_TSA_URL set: a real RFC 3161 HTTP endpoint stamps both signatures, and the report takes the time from it."""
    tsa = TimestampAuthority()
    await tsa.start()
    try:
        results = await asyncio.to_thread(_chain, city, make_pdf(1), 2, planned=2, tsa_url=tsa.url)
    finally:
        await tsa.stop()
    # once per process: a first request that shows the TSA's certificates (their validation data goes in the DSS);
    # then per signature its token
    assert tsa.requests == 1 + 2
    report = await verify_pdf_async(results[-1].pdf, load_roots(city.root_pem + tsa.root_pem))
    assert report.ok, report.to_text()
    assert all(s.timestamped for s in report.signatures)
    assert [s.level for s in report.signatures] == ["B-LT", "B-LT"]
    assert all(r.signature_valid for r in pdfsig(results[-1].pdf, city.root_pem))


def _page_texts(pdf: bytes) -> list[str]:
    document = pypdfium2.PdfDocument(pdf)
    try:
        return [document[i].get_textpage().get_text_range() for i in range(len(document))]
    finally:
        document.close()


async def test_the_first_signature_prints_the_verification_footer_on_every_page_inside_what_it_certifies(city: SigningCity) -> None:
    """The footer given to the first of three planned signatures is on each of 3 pages; afterwards pyHanko calls every
    signature intact and trusted with nothing but later signatures after it, and pdfsig accepts all three."""
    footer = "Check this document at https://paraaf.example/check with code 1234 5678 9012 3452 and secret K7QX-M2PA"
    results = await asyncio.to_thread(_chain, city, make_pdf(3), 3, planned=3, footer=footer)
    assert [r.footer_stamped for r in results] == [True, False, False]
    assert all(footer in text for text in _page_texts(results[-1].pdf)), _page_texts(results[-1].pdf)
    assert not any(footer in text for text in _page_texts(make_pdf(3)))
    reports = await pyhanko_validate(results[-1].pdf, city.root_pem)
    assert all(r.intact and r.valid and r.trusted for r in reports), reports
    assert [r.modification_level for r in reports] == ["FORM_FILLING", "FORM_FILLING", "NONE"], reports
    poppler = pdfsig(results[-1].pdf, city.root_pem)
    assert len(poppler) == 3 and all(r.signature_valid and r.certificate_trusted for r in poppler), [r.raw for r in poppler]


async def test_a_pdf_signed_before_it_came_to_paraaf_gets_no_footer_so_its_signature_stays_valid(city: SigningCity) -> None:
    """A footer asked for on top of someone else's signature is not printed (new page content would break it)."""
    outside = (await asyncio.to_thread(_chain, city, make_pdf(1), 1))[0].pdf
    footer = "Check this document at https://paraaf.example/check with code 1234 5678 9012 3452 and secret K7QX-M2PA"
    result = await asyncio.to_thread(sign, city.job(outside, 2, "Bart Baert", "burgemeester", footer=footer))
    assert not result.footer_stamped and not any(footer in text for text in _page_texts(result.pdf))
    reports = await pyhanko_validate(result.pdf, city.root_pem)
    assert len(reports) == 2 and all(r.intact and r.valid and r.trusted for r in reports), reports


@pytest.mark.parametrize("rotate", [0, 90, 180, 270])
def test_the_footer_runs_along_the_bottom_of_the_page_as_it_is_shown_whatever_its_rotation(rotate: int) -> None:
    """On a page turned by /Rotate, the footer is drawn upright along the bottom edge a reader sees: the bottom strip
    of the rendered page holds a long horizontal run of ink, and the footer's text is on the page."""
    writer = IncrementalPdfFileWriter(io.BytesIO(make_pdf(1)), strict=False)
    page_ref, _ = writer.find_page_for_modification(0)
    page_ref.get_object()[generic.pdf_name("/Rotate")] = generic.NumberObject(rotate)
    writer.mark_update(page_ref)
    rotated = io.BytesIO()
    writer.write(rotated)
    writer = IncrementalPdfFileWriter(io.BytesIO(rotated.getvalue()), strict=False)
    footer = "Check this document at https://paraaf.example/check with code 1234 5678 9012 3452 and secret K7QX-M2PA"
    assert stamp_footer(writer, footer)
    stamped = io.BytesIO()
    writer.write(stamped)
    assert footer in _page_texts(stamped.getvalue())[0]
    document = pypdfium2.PdfDocument(stamped.getvalue())
    image = document[0].render(scale=1).to_pil().convert("L")
    document.close()
    width, height = image.size
    strip = image.crop((0, height - 24, width, height))  # the footer's baseline is 12 pt above the shown bottom edge
    inked = [x for x in range(width) if any(strip.getpixel((x, y)) < 160 for y in range(strip.height))]
    assert inked and inked[0] < 60 and inked[-1] - inked[0] > 250, (rotate, inked[:3], inked[-3:])  # upright: ~340 pt long
