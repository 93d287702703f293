"""The stamp font embeds a subset made once per set of glyphs: a person in a
function gets the same subset whatever the date and time on the stamp."""

import io
import zlib

from fontTools import ttLib
from pyhanko.pdf_utils.writer import PdfFileWriter

from services.signer.fonts import DEFAULT_FONT, ReusedFont, reduced_font


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
