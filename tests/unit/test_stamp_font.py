"""The stamp font embeds a subset made once per set of glyphs: a person in a
function gets the same subset whatever the date and time on the stamp."""

import io
import zlib

from fontTools import ttLib
from pyhanko.pdf_utils.font.opentype import CIDFontType2, GlyphAccumulator
from pyhanko.pdf_utils.writer import PdfFileWriter

from services.signer.fonts import DEFAULT_FONT, ReusedFont, ReusedGlyphAccumulator, reduced_font


def _embedded(font: ReusedFont, text: str) -> bytes:
    """The font program a stamp with ``text`` embeds (deflated, as written in the PDF)."""
    engine = font.create_font_engine(PdfFileWriter())
    for line in text.split("\n"):
        engine.shape(line)
    engine.prepare_write()
    return engine.cidfont_obj._font_descriptor["/FontFile2"].get_object().encoded_data


def _drawable(program: bytes, character: str, font: ReusedFont) -> bool:
    """The subset has an outline for ``character`` (glyph ids are kept, so it is looked up by the whole font's id)."""
    subset = ttLib.TTFont(io.BytesIO(zlib.decompress(program)))
    glyph_id = font.tt.getGlyphID(font.tt.getBestCmap()[ord(character)])
    order = subset.getGlyphOrder()  # kept up to the highest glyph id used
    return glyph_id < len(order) and subset["glyf"][order[glyph_id]].numberOfContours != 0  # a composite (ü) counts -1


def test_one_person_gets_one_subset_at_every_time_and_another_name_its_own() -> None:
    """Ann at 05:13 CET and at 17:48 CEST embed the very same program (made once); Marc Müller's has his ü, Ann's not."""
    font = ReusedFont(reduced_font(DEFAULT_FONT))
    morning = _embedded(font, "Ann Aérts\nalgemeen directeur\n30-11-2026 05:13 CET")
    evening = _embedded(font, "Ann Aérts\nalgemeen directeur\n01-07-2027 17:48 CEST")
    marc = _embedded(font, "Marc Müller\nschepen\n30-11-2026 05:13 CET")
    assert morning is evening
    assert _drawable(morning, "9", font) and _drawable(morning, "S", font), "a date's digits and a zone's capitals are in"
    assert _drawable(marc, "ü", font) and not _drawable(morning, "ü", font)


def _shaped_by_pyhanko(font: ReusedFont, lines: list[str]) -> tuple[list[bytes], dict, dict]:
    engine = font.create_font_engine(PdfFileWriter())
    ops = [GlyphAccumulator.shape(engine, line).graphics_ops for line in lines]
    return ops, dict(engine._glyphs), dict(engine._cid_to_unicode)


def _shaped(font: ReusedFont, lines: list[str]) -> tuple[list[bytes], dict, dict]:
    engine = font.create_font_engine(PdfFileWriter())
    ops = [engine.shape(line).graphics_ops for line in lines]
    return ops, dict(engine._glyphs), dict(engine._cid_to_unicode)


def test_a_line_shaped_before_draws_and_registers_what_pyhanko_would() -> None:
    """The second stamp's lines come from the process's shapes, the third's too in another order: the same text
    operators, glyph widths and ToUnicode map as pyHanko shaping each line in that engine. A line whose cluster
    holds several glyphs (q and a combining diaeresis, which has no glyph of its own) is not kept: pyHanko's outcome there depends on the lines
    before it."""
    font = ReusedFont(reduced_font(DEFAULT_FONT))
    stamp = ["Ann Aérts", "wnd. algemeen directeur", "30-11-2026 05:13 CET", "Jacq\u0308ues", ""]
    for lines in (stamp, stamp, list(reversed(stamp))):
        assert _shaped(font, lines) == _shaped_by_pyhanko(font, lines)
    assert ("Ann Aérts", True) in font.shapes and ("Jacq\u0308ues", True) not in font.shapes


def _written(obj: object) -> bytes:
    out = io.BytesIO()
    obj.write_to_stream(out)  # type: ignore[attr-defined]
    return out.getvalue()


def test_the_font_objects_are_what_pyhanko_writes() -> None:
    """The ToUnicode map kept per set of entries and the font descriptor read from the tables looked up once: the
    same PDF objects as pyHanko's own engine over the same font and glyphs."""
    font = ReusedFont(reduced_font(DEFAULT_FONT))
    for _ in range(2):
        ours = font.create_font_engine(PdfFileWriter())
        pyhanko = font.create_font_engine(PdfFileWriter())
        for line in ("Ann Aérts", "algemeen directeur"):
            ours.shape(line)
            GlyphAccumulator.shape(pyhanko, line)
        assert _written(ours._format_tounicode_cmap()) == _written(GlyphAccumulator._format_tounicode_cmap(pyhanko))
    reference = CIDFontType2(font.tt, font.ps_name, ours.cidfont_obj.subset_prefix)  # read from the whole font
    assert _written(ours.cidfont_obj._font_descriptor) == _written(reference._font_descriptor)
    assert _written(ours.cidfont_obj) == _written(reference)


def test_the_widths_kept_per_set_of_glyphs_are_what_pyhanko_writes() -> None:
    """prepare_write with its /W array made once per set of (CID, width)s: the same CID font, type-0 font and
    ToUnicode objects as pyHanko's own prepare_write over the same glyphs (the drawn ones and those every stamp gets),
    the first time and from the cache."""
    font = ReusedFont(reduced_font(DEFAULT_FONT))

    def pyhankos(engine: ReusedGlyphAccumulator) -> None:
        for glyph in font.always:
            engine._get_cid_and_width(glyph)
        GlyphAccumulator.prepare_write(engine)

    for lines in (("Ann Aérts", "schepen"), ("Ann Aérts", "schepen"), ("Bart Baert", "wnd. burgemeester 01-12-2026")):
        engines = []
        for prepare in (ReusedGlyphAccumulator.prepare_write, pyhankos):
            writer = PdfFileWriter()
            engine = font.create_font_engine(writer)
            for line in lines:
                engine.shape(line)
            prepare(engine)
            type0 = writer.get_object(engine.as_resource().reference)
            named = _written(type0).replace(engine.subset_prefix.encode(), b"SUBSET")  # a random prefix per engine
            engines.append((_written(engine.cidfont_obj["/W"]), named, _written(type0["/ToUnicode"])))
        assert engines[0] == engines[1], lines
    assert len(font.width_arrays) == 2
