"""The TrueType font signature stamps are drawn in, so names like "Aérts" or
"Müller" render in every viewer (the PDF base fonts cannot be relied on for
that, and a stamp must not depend on the reader's fonts).

pyHanko embeds a subset of the font in every signature it draws. Handing it
DejaVu Sans whole costs ~110 ms a signature (fontTools parses the OpenType
layout tables each time), so each process makes, once, a reduced copy: Latin
scripts and common punctuation only, no layout tables, no hinting. That copy
is also rescaled to 1000 units per em: pyHanko 0.38 writes glyph widths in
font units while PDF reads them as thousandths of an em, so a 2048-unit font
such as DejaVu comes out letter-spaced.
"""

import io
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from fontTools import subset, ttLib
from fontTools.ttLib.scaleUpem import scale_upem
from pyhanko.pdf_utils.font.api import FontEngineFactory
from pyhanko.pdf_utils.font.opentype import GlyphAccumulator
from pyhanko.pdf_utils.writer import BasePdfFileWriter

__all__ = ["DEFAULT_FONT", "StampFont", "stamp_font"]

DEFAULT_FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"  # Debian: fonts-dejavu-core

# Basic Latin through Latin Extended-B (Dutch, French, German, Polish, Czech,
# Turkish, Romanian names) plus the punctuation and symbols stamps use.
_CODEPOINTS = [*range(0x20, 0x250), 0x2013, 0x2014, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2026, 0x20AC]


def _reduced(path: str) -> bytes:
    options = subset.Options()
    options.hinting = False
    options.layout_features = []
    options.drop_tables += ["FFTM", "GSUB", "GPOS", "GDEF", "kern"]
    options.name_IDs = ["*"]
    options.notdef_outline = True
    font = ttLib.TTFont(path)
    subsetter = subset.Subsetter(options)
    subsetter.populate(unicodes=_CODEPOINTS)
    subsetter.subset(font)
    scale_upem(font, 1000)
    out = io.BytesIO()
    font.save(out)
    return out.getvalue()


@dataclass(frozen=True)
class StampFont(FontEngineFactory):
    """A font engine factory over font bytes held in memory."""

    data: bytes
    font_size: int = 10

    def create_font_engine(self, writer: BasePdfFileWriter, obj_stream: object = None) -> GlyphAccumulator:
        if obj_stream is None and writer.stream_xrefs:
            obj_stream = writer.prepare_object_stream()
        return GlyphAccumulator(writer=writer, font_handle=io.BytesIO(self.data), font_size=self.font_size, obj_stream=obj_stream)


@lru_cache(maxsize=4)
def stamp_font(path: str = DEFAULT_FONT) -> StampFont | None:
    """The stamp font of this process, or None when ``path`` does not exist (stamps then use Helvetica)."""
    if not path or not Path(path).is_file():
        return None
    return StampFont(_reduced(path))
