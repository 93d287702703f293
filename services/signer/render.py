"""The document as pictures, for the signing page: every phone browser shows a
PNG, while an embedded PDF viewer is missing on most of them.

Pages are rendered with PDFium (pypdfium2) in a worker process: PDFium is not
thread-safe, and rendering is CPU work the event loop must not wait on. The
worker has a time and a memory limit, so a page built to exhaust a renderer
costs one missing picture (the PDF itself still opens), never the signer. A
small cache keeps recent pages, since a signer scrolls up and down and may
reload the page.
"""

import ctypes
import io
import zlib
from collections import OrderedDict
from collections.abc import Callable
from functools import cache
from typing import Any

import pypdfium2
import pypdfium2.raw
import structlog
from PIL import Image, ImageChops

from shared.workers import WorkerDied, WorkerPool, WorkerTimedOut

__all__ = ["PAGE_WIDTH_PX", "NotRendered", "RenderPool", "page_sizes", "render_page", "sizes_and_first_page"]

# 1000 px wide: sharp on a 390-point phone screen at 2.5x, still small (~100 KB).
PAGE_WIDTH_PX = 1000


def page_sizes(pdf: bytes) -> list[tuple[int, int]]:
    """Each page's size in pixels as :func:`render_page` draws it, so the page can lay out before the images arrive."""
    document = pypdfium2.PdfDocument(pdf)
    try:
        return _sizes(document)
    finally:
        document.close()


def render_page(pdf: bytes, index: int) -> bytes:
    """Page ``index`` (0-based) as a PNG ``PAGE_WIDTH_PX`` wide, with signature stamps drawn."""
    document = pypdfium2.PdfDocument(pdf)
    try:
        return _draw(document, index)
    finally:
        document.close()


def sizes_and_first_page(pdf: bytes) -> tuple[list[tuple[int, int]], bytes | None]:
    """:func:`page_sizes` and the first page's picture from one opening of the PDF: the signing page asks for the
    sizes, and its browser for that picture right after (it is at the top of the page). No picture when PDFium
    cannot draw it: the sizes still count, and the picture's own request answers for the page."""
    document = pypdfium2.PdfDocument(pdf)
    try:
        sizes = _sizes(document)
        try:
            return sizes, _draw(document, 0) if sizes else None
        except pypdfium2.PdfiumError:
            return sizes, None
    finally:
        document.close()


def _sizes(document: pypdfium2.PdfDocument) -> list[tuple[int, int]]:
    """From the page tree alone (rotation included), without loading each page and its content (30 pages: 0.5 ms
    instead of 2)."""
    sizes = []
    for index in range(len(document)):
        width, height = document.get_page_size(index)
        sizes.append((PAGE_WIDTH_PX, round(height * PAGE_WIDTH_PX / width)))
    return sizes


def _draw(document: pypdfium2.PdfDocument, index: int) -> bytes:
    _reuse_image_memory()
    document.init_forms()  # without it PDFium leaves out form fields, i.e. the signature stamps
    page = document[index]
    width, _ = page.get_size()
    # rev_byteorder: PDFium draws RGB itself, so PIL takes its buffer without reordering every pixel. A bitmap
    # with alpha: on one without, PDFium draws the text of form fields (the signature stamps) with LCD subpixel
    # fringes, whatever the flags say, and a page of black text with a stamp would look coloured and go as RGB
    # (12 ms to encode instead of 3). Its fill is opaque white, so every pixel stays opaque.
    bitmap = page.render(
        scale=PAGE_WIDTH_PX / width,
        may_draw_forms=True,
        rev_byteorder=True,
        force_bitmap_format=pypdfium2.raw.FPDFBitmap_BGRA,
        bitmap_maker=_reused_bitmap,
    )
    return _png(bitmap.to_pil())  # done with the buffer before the next page is drawn into it


def _reused_bitmap(width: int, height: int, format: int, rev_byteorder: bool) -> pypdfium2.PdfBitmap:
    """A bitmap over the buffer of the page before (a worker draws one page at a time): a fresh one is zeroed by
    ctypes first, 1.5 ms for a page's 5.6 MB, and PDFium fills it with white anyway. A page far longer than A4 gets
    a buffer of its own, so the worker does not keep its memory."""
    global _buffer
    size = 4 * width * height
    if size > _KEPT_BUFFER_BYTES:
        return pypdfium2.PdfBitmap.new_native(width, height, format, rev_byteorder)
    if len(_buffer) < size:
        _buffer = (ctypes.c_ubyte * size)()
    return pypdfium2.PdfBitmap.new_native(width, height, format, rev_byteorder, buffer=_buffer)


_KEPT_BUFFER_BYTES = 4 * PAGE_WIDTH_PX * 2 * PAGE_WIDTH_PX  # up to twice as long as wide
_buffer = (ctypes.c_ubyte * 0)()


def _png(image: Image.Image) -> bytes:
    """The picture as PNG, lossless. A page without colour (black text on white, most of them) goes as 8-bit grey:
    the same pixels, a third of the bytes to compress (an A4 text page: 12 ms of CPU and 30 KB as RGB, 3 ms and
    10 KB grey)."""
    grey = _grey(image)
    # PDFium's alpha is opaque everywhere: a coloured picture goes without it.
    image = _greys(grey) if grey is not None else image.convert("RGB")
    out = io.BytesIO()
    # Run-length deflate: as fast as level 1 on these pictures, and a third smaller (long runs of white).
    image.save(out, format="PNG", compress_level=1, compress_type=zlib.Z_RLE)
    return out.getvalue()


def _greys(grey: Image.Image) -> Image.Image:
    """8-bit grey as a picture of 256 palette greys: the same pixels, and PIL's PNG writer skips its per-row filter
    search for a palette (3 ms a page instead of 4.4). ``grey`` itself becomes it: a palette put on an "L" picture
    makes it "P" where it is, without copying its pixels (0.7 ms)."""
    grey.putpalette(_GREY_PALETTE)
    return grey


_GREY_PALETTE = bytes(level for level in range(256) for _ in "rgb")


@cache
def _reuse_image_memory() -> None:
    """Let PIL keep a few freed memory blocks for the next picture instead of giving them back: each page-sized image
    otherwise faults in fresh memory, and the colour check's images cost more than the grey encoding saved (a render
    with both: 8 ms of CPU instead of 16)."""
    Image.core.set_blocks_max(4)


def _grey(image: Image.Image) -> Image.Image | None:
    """The picture's grey levels when it has no colour (r = g = b in every pixel, so its red band is all of it: no
    grey conversion to pay for), else None."""
    red, green, blue = image.split()[:3]
    if ImageChops.difference(red, green).getbbox() is None and ImageChops.difference(green, blue).getbbox() is None:
        return red
    return None


class NotRendered(RuntimeError):
    """The page could not be drawn within the renderer's time or memory."""


class RenderPool:
    """A worker process that renders pages, with a cache of the latest ones by (document version, page)."""

    def __init__(self, workers: int = 1, cache_size: int = 64, *, seconds: float = 20.0, memory_mb: int = 1024) -> None:
        self._pool = WorkerPool(workers, memory_mb=memory_mb, preload=(__name__,))
        self._seconds = seconds
        self._cache: OrderedDict[tuple[str, int], bytes] = OrderedDict()
        self._sizes: OrderedDict[str, list[tuple[int, int]]] = OrderedDict()
        self._cache_size = cache_size

    def known_sizes(self, digest: str) -> list[tuple[int, int]] | None:
        """The version's page sizes when they are at hand, so a caller need not fetch its PDF to learn them."""
        return self._sizes.get(digest)

    def known_page(self, digest: str, index: int) -> bytes | None:
        """The version's page picture when it is at hand, so a caller need not fetch its PDF to show it."""
        key = (digest, index)
        if key in self._cache:
            self._cache.move_to_end(key)
        return self._cache.get(key)

    async def page_sizes(self, digest: str, pdf: bytes) -> list[tuple[int, int]]:
        """The sizes; the first page's picture is drawn in the same job when it is not at hand (the browser asks for it
        next: this way it needs neither the PDF fetched again nor a second job)."""
        if digest in self._sizes:
            return self._sizes[digest]
        sizes = None
        if (digest, 0) not in self._cache:
            try:
                sizes, first = await self._run(sizes_and_first_page, pdf)
                if first is not None:
                    self._keep(digest, 0, first)
            except NotRendered:
                pass  # the first page is beyond the renderer: the sizes alone may still be had
        self._keep_sizes(digest, sizes if sizes is not None else await self._run(page_sizes, pdf))
        return self._sizes[digest]

    async def page(self, digest: str, pdf: bytes, index: int) -> bytes:
        if (known := self.known_page(digest, index)) is not None:
            return known
        png = await self._run(render_page, pdf, index)
        self._keep(digest, index, png)
        return png

    def derive(self, digest: str, before: str, changed: frozenset[int] | None) -> None:
        """Version ``digest`` is version ``before`` with only the pages ``changed`` drawn differently (a signature: its
        stamp's page; None: any page): the pictures of ``before``'s other pages at hand are its pictures too, and its
        sizes are ``before``'s. Only when its first page is among them, so that opening its signing page needs no job
        at all; otherwise its sizes come with that page's picture in one job, as for any version."""
        sizes = self._sizes.get(before)
        if changed is None or sizes is None or 0 in changed or (before, 0) not in self._cache:
            return
        for index in range(len(sizes)):
            if index not in changed and (png := self.known_page(before, index)) is not None:
                self._keep(digest, index, png)
        self._keep_sizes(digest, sizes)

    def _keep_sizes(self, digest: str, sizes: list[tuple[int, int]]) -> None:
        self._sizes[digest] = sizes
        while len(self._sizes) > 16 * self._cache_size:
            self._sizes.popitem(last=False)

    def _keep(self, digest: str, index: int, png: bytes) -> None:
        self._cache[(digest, index)] = png
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    async def _run(self, function: Callable[..., Any], *args: Any) -> Any:
        try:
            return await self._pool.run(function, *args, timeout=self._seconds)
        except (WorkerTimedOut, WorkerDied, MemoryError) as exc:
            structlog.get_logger().warning("page not rendered", job=function.__name__, error=repr(exc))
            raise NotRendered(str(exc)) from None

    def close(self) -> None:
        self._pool.close()
