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

That still left the stamp costing as much as the signature itself: pyHanko
parses the font anew for every signature and subsets and compresses it
again (~9 ms). :class:`ReusedFont` parses it once per process, and the
embedded subset is made once per set of glyphs: the digits and capitals a
date and time zone use are always in it, so one person in one function gets
the same subset every time, kept compressed and written as is.

Each line of a stamp is shaped once per process too (its name, its function,
"wnd. burgemeester": they recur in every stamp of that person; a date line
only within its minute), and its ToUnicode map compressed once per set of
entries: once pyHanko's signature had become cheaper (shared/pyhanko_fast.py),
a stamp added 40 % to it, against the 30 % it may (issue 13), and shaping its
lines again was a quarter of that.
"""

import io
import zlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import uharfbuzz
from fontTools import subset, ttLib
from fontTools.ttLib.scaleUpem import scale_upem
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.font.api import FontEngine, FontEngineFactory, ShapeResult
from pyhanko.pdf_utils.font.opentype import CIDFontType2, GlyphAccumulator, _build_type0_font_from_cidfont, _read_ps_name
from pyhanko.pdf_utils.writer import BasePdfFileWriter, PdfFileWriter

from services.signer.config import DEFAULT_FONT

__all__ = ["DEFAULT_FONT", "ReusedFont", "StampFont", "reduced_font", "stamp_font"]


# Basic Latin through Latin Extended-B (Dutch, French, German, Polish, Czech,
# Turkish, Romanian names) plus the punctuation and symbols stamps use.
_CODEPOINTS = [*range(0x20, 0x250), 0x2013, 0x2014, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2026, 0x20AC]
# Always in a subset, whatever the text: what dates, times and time zones are written with.
_ALWAYS = "0123456789-:+/. ABCDEFGHIJKLMNOPQRSTUVWXYZ"


@lru_cache(maxsize=4)
def reduced_font(path: str) -> bytes:
    """The reduced, rescaled copy of the font at ``path`` (once per process)."""
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
    """pyHanko's own font engine over font bytes held in memory: parses and subsets per signature."""

    data: bytes
    font_size: int = 10

    def create_font_engine(self, writer: BasePdfFileWriter, obj_stream: object = None) -> GlyphAccumulator:
        if obj_stream is None and writer.stream_xrefs:
            obj_stream = writer.prepare_object_stream()
        return GlyphAccumulator(writer=writer, font_handle=io.BytesIO(self.data), font_size=self.font_size, obj_stream=obj_stream)


class ReusedFont(FontEngineFactory):
    """A font parsed once, whose embedded subsets are made once per set of glyphs."""

    def __init__(self, data: bytes, font_size: int = 10) -> None:
        self.data = data
        self.font_size = font_size
        self.tt = ttLib.TTFont(io.BytesIO(data))  # read only: subsets are made from fresh copies
        self.hb_font = uharfbuzz.Font(uharfbuzz.Face(data))
        self.ps_name = _read_ps_name(self.tt)
        self.units_per_em = self.tt["head"].unitsPerEm
        self.glyph_set = self.tt.getGlyphSet(preferCFF=True)
        cmap = self.tt.getBestCmap()
        self.always = tuple(self.tt.getGlyphID(cmap[ord(c)]) for c in _ALWAYS if ord(c) in cmap)
        self._programs: dict[frozenset[int], bytes] = {}
        self.shapes: dict[tuple[str, bool], _Shaped] = {}
        self.to_unicode: dict[tuple[tuple[int, str], ...], bytes] = {}
        self.widths: dict[int, tuple[int, int]] = {}  # glyph id -> (CID, width), as pyHanko's engine finds them
        self.width_arrays: dict[tuple[tuple[int, int], ...], _WrittenArray] = {}  # (CID, width)s -> their /W
        # The tables pyHanko's font descriptor reads, looked up once (fontTools' lookup cost more than the rest of it).
        self.descriptor_tables = {name: self.tt[name] for name in ("hhea", "head", "OS/2", "post")}

    def program(self, glyphs: frozenset[int]) -> bytes:
        """The subset holding ``glyphs`` (glyph ids kept), deflated."""
        if (found := self._programs.get(glyphs)) is not None:
            return found
        options = subset.Options(layout_closure=False)
        options.drop_tables += ["GPOS", "GDEF", "GSUB"]
        options.retain_gids = True  # pyHanko's CIDs are the glyph ids (CIDToGIDMap /Identity)
        font = ttLib.TTFont(io.BytesIO(self.data))
        subsetter = subset.Subsetter(options=options)
        subsetter.populate(gids=sorted(glyphs))
        subsetter.subset(font)
        out = io.BytesIO()
        font.save(out)
        if len(self._programs) >= 256:  # people x functions seen by this process; a bound, not a policy
            self._programs.pop(next(iter(self._programs)))
        self._programs[glyphs] = program = zlib.compress(out.getvalue())
        return program

    def create_font_engine(self, writer: BasePdfFileWriter, obj_stream: object = None) -> "ReusedGlyphAccumulator":
        if obj_stream is None and writer.stream_xrefs:
            obj_stream = writer.prepare_object_stream()
        return ReusedGlyphAccumulator(writer, self, obj_stream)


@dataclass(frozen=True)
class _Shaped:
    """A line as pyHanko shaped it, and what shaping it registered with the font engine: the glyphs it asked
    for (in order) and the ToUnicode entries it wrote (in order)."""

    result: ShapeResult
    glyphs: tuple[int, ...]
    unicode: tuple[tuple[int, str], ...]


class _RecordedUnicode(dict[int, str]):
    """The engine's ToUnicode map while a line is shaped: notes what is written, and whether it was asked what it
    holds (pyHanko's fallback for a cluster of several glyphs, whose outcome depends on earlier lines)."""

    def __init__(self, held: dict[int, str]) -> None:
        super().__init__(held)
        self.written: list[tuple[int, str]] = []
        self.asked = False

    def __setitem__(self, cid: int, text: str) -> None:
        self.written.append((cid, text))
        super().__setitem__(cid, text)

    def __contains__(self, cid: object) -> bool:
        self.asked = True
        return super().__contains__(cid)


class _PreparedCIDFont(CIDFontType2):
    """A TrueType CID font whose program is the font's cached subset for the glyphs drawn."""

    def __init__(self, font: ReusedFont, subset_prefix: str, glyphs: dict[int, tuple[int, int]]) -> None:
        # pyHanko reads only the descriptor's tables through this (its own set_font_file, which saves the whole
        # font, is replaced below).
        super().__init__(font.descriptor_tables, font.ps_name, subset_prefix)  # type: ignore[arg-type]
        self._font = font
        self._drawn = glyphs

    def set_font_file(self, writer: BasePdfFileWriter) -> generic.IndirectObject:
        stream = generic.StreamObject(
            {generic.pdf_name("/Filter"): generic.pdf_name("/FlateDecode")},
            encoded_data=self._font.program(frozenset(self._drawn)),
        )
        ref = writer.add_object(stream)
        self._font_descriptor[generic.pdf_name("/FontFile2")] = ref
        return ref


class ReusedGlyphAccumulator(GlyphAccumulator):
    """pyHanko's glyph accumulator over a font parsed once, embedding a cached subset.

    Shaping, widths, the ToUnicode map and the PDF objects are pyHanko's own;
    only the parse (in ``__init__``) and the subsetting (``prepare_write``) differ.
    """

    def __init__(self, writer: BasePdfFileWriter, font: ReusedFont, obj_stream: object = None) -> None:
        FontEngine.__init__(self, writer, font.ps_name, embedded_subset=True, obj_stream=obj_stream, font_size=font.font_size)
        self._font = font
        self.hb_font = font.hb_font
        self.tt = font.tt
        self._font_ref = writer.allocate_placeholder()
        self.cff_charset = None
        self.use_raw_gids = True
        self.features = None
        self.units_per_em = font.units_per_em
        self._glyphs: dict[int, tuple[int, int]] = {}
        self._glyph_set = font.glyph_set
        self._cid_to_unicode: dict[int, str] = {}
        self._GlyphAccumulator__reverse_cmap = None
        self.ot_language_tag = self.ot_script_tag = self.writing_direction = self.bcp47_lang_code = None
        self.cidfont_obj = _PreparedCIDFont(font, self.subset_prefix, self._glyphs)
        self._subset_created = True  # never subset the shared font: _PreparedCIDFont embeds the cached subset
        self._write_prepared = False

    def _get_cid_and_width(self, glyph_id: int) -> tuple[int, int]:
        """pyHanko's (CID, width) for a glyph it draws, found once per process (its glyph name and outline lookups
        cost more than the rest of a stamp's glyph handling)."""
        found = self._glyphs.get(glyph_id)
        if found is None:
            found = self._font.widths.get(glyph_id)
            if found is None:
                found = self._font.widths[glyph_id] = super()._get_cid_and_width(glyph_id)
            self._glyphs[glyph_id] = found
        return found

    def shape(self, txt: str, with_actual_text: bool = True) -> ShapeResult:
        """pyHanko's shaping of ``txt``, done once per process (see the module's docstring); a line shaped before
        registers the same glyphs and ToUnicode entries with this engine as shaping it did."""
        key = (txt, with_actual_text)
        shaped = self._font.shapes.get(key)
        if shaped is None:
            shaped = self._shape(txt, with_actual_text)
            if shaped is None:
                return super().shape(txt, with_actual_text)
            if len(self._font.shapes) >= 4096:  # lines of the people and times seen by this process; a bound
                self._font.shapes.pop(next(iter(self._font.shapes)))
            self._font.shapes[key] = shaped
        for glyph in shaped.glyphs:
            self._get_cid_and_width(glyph)
        for cid, text in shaped.unicode:
            self._cid_to_unicode[cid] = text
        return shaped.result

    def _shape(self, txt: str, with_actual_text: bool) -> _Shaped | None:
        """``txt`` shaped by pyHanko in a fresh engine over the same font, recording what it registers; None when
        the outcome depends on what was shaped before (a cluster of several glyphs)."""
        engine = ReusedGlyphAccumulator(PdfFileWriter(), self._font)
        asked: list[int] = []
        get = engine._get_cid_and_width

        def recorded(glyph: int) -> tuple[int, int]:
            asked.append(glyph)
            return get(glyph)

        engine._get_cid_and_width = recorded  # type: ignore[method-assign]
        engine._cid_to_unicode = unicode = _RecordedUnicode({})
        result = GlyphAccumulator.shape(engine, txt, with_actual_text)
        if unicode.asked:
            return None
        return _Shaped(result, tuple(asked), tuple(unicode.written))

    def _format_tounicode_cmap(self) -> generic.StreamObject:
        """pyHanko's ToUnicode map, compressed once per process for each set of entries (a person's stamps share it)."""
        entries = tuple(self._cid_to_unicode.items())
        data = self._font.to_unicode.get(entries)
        if data is None:
            data = super()._format_tounicode_cmap().encoded_data
            if len(self._font.to_unicode) >= 256:  # a bound, as for the subsets
                self._font.to_unicode.pop(next(iter(self._font.to_unicode)))
            self._font.to_unicode[entries] = data
        return generic.StreamObject({generic.pdf_name("/Filter"): generic.pdf_name("/FlateDecode")}, encoded_data=data)

    def prepare_write(self) -> None:
        """pyHanko's ``GlyphAccumulator.prepare_write`` (the subset is the cached one, see __init__), with the CID
        font's /W array made and written once per process for each set of (CID, width)s: the same set recurs in
        every stamp of a person, and pyHanko made it of a new number object per glyph and wrote those one by one."""
        for glyph in self._font.always:
            self._get_cid_and_width(glyph)
        if self._write_prepared:
            return
        by_cid = tuple(sorted(self._glyphs.values(), key=lambda t: t[0]))
        type0 = _build_type0_font_from_cidfont(
            writer=self.writer, cidfont_obj=self.cidfont_obj, widths_by_cid_iter=iter(by_cid[:1]),
            obj_stream=self.obj_stream, vertical=False,
        )
        self.cidfont_obj[generic.pdf_name("/W")] = self._width_array(by_cid)
        type0["/ToUnicode"] = self.writer.add_object(self._format_tounicode_cmap())
        self.writer.add_object(type0, self.obj_stream, idnum=self._font_ref.idnum)
        self._write_prepared = True

    def _width_array(self, by_cid: tuple[tuple[int, int], ...]) -> "_WrittenArray":
        found = self._font.width_arrays.get(by_cid)
        if found is None:
            widths_only = _WidthsOnly()
            _build_type0_font_from_cidfont(PdfFileWriter(), widths_only, iter(by_cid), vertical=False)
            widths = widths_only["/W"]
            written = io.BytesIO()
            widths.write_to_stream(written)
            found = _WrittenArray(widths, written.getvalue())
            if len(self._font.width_arrays) >= 256:  # a bound, as for the subsets
                self._font.width_arrays.pop(next(iter(self._font.width_arrays)))
            self._font.width_arrays[by_cid] = found
        return found


class _WidthsOnly(generic.DictionaryObject):
    """A CID font for pyHanko's type-0 font builder to put the /W array in, with nothing to embed."""

    name = ""

    def embed(self, writer: BasePdfFileWriter, obj_stream: object = None) -> None:
        pass


class _WrittenArray(generic.ArrayObject):
    """A PDF array of numbers that writes the bytes pyHanko wrote for it once (numbers hold nothing a security
    handler encrypts)."""

    def __init__(self, items: list, written: bytes) -> None:
        super().__init__(items)
        self._written = written

    def write_to_stream(self, stream: io.IOBase, handler: object = None, container_ref: object = None) -> None:
        stream.write(self._written)


@lru_cache(maxsize=4)
def stamp_font(path: str = DEFAULT_FONT) -> ReusedFont | None:
    """The stamp font of this process, or None when ``path`` does not exist (stamps then use Helvetica)."""
    if not path or not Path(path).is_file():
        return None
    return ReusedFont(reduced_font(path))
