"""The document as pictures, for the signing page: every phone browser shows a
PNG, while an embedded PDF viewer is missing on most of them.

Pages are rendered with PDFium (pypdfium2) in a worker process: PDFium is not
thread-safe, and rendering is CPU work the event loop must not wait on. A
small cache keeps recent pages, since a signer scrolls up and down and may
reload the page.
"""

import io
from collections import OrderedDict

import pypdfium2

from shared.workers import WorkerPool

__all__ = ["PAGE_WIDTH_PX", "RenderPool", "page_sizes", "render_page"]

# 1000 px wide: sharp on a 390-point phone screen at 2.5x, still small (~100 KB).
PAGE_WIDTH_PX = 1000


def page_sizes(pdf: bytes) -> list[tuple[int, int]]:
    """Each page's size in pixels as :func:`render_page` draws it, so the page can lay out before the images arrive."""
    document = pypdfium2.PdfDocument(pdf)
    try:
        sizes = []
        for index in range(len(document)):
            width, height = document[index].get_size()
            sizes.append((PAGE_WIDTH_PX, round(height * PAGE_WIDTH_PX / width)))
        return sizes
    finally:
        document.close()


def render_page(pdf: bytes, index: int) -> bytes:
    """Page ``index`` (0-based) as a PNG ``PAGE_WIDTH_PX`` wide, with signature stamps drawn."""
    document = pypdfium2.PdfDocument(pdf)
    try:
        document.init_forms()  # without it PDFium leaves out form fields, i.e. the signature stamps
        page = document[index]
        width, _ = page.get_size()
        image = page.render(scale=PAGE_WIDTH_PX / width, may_draw_forms=True).to_pil()
        out = io.BytesIO()
        image.save(out, format="PNG", compress_level=1)
        return out.getvalue()
    finally:
        document.close()


class RenderPool:
    """A worker process that renders pages, with a cache of the latest ones by (document version, page)."""

    def __init__(self, workers: int = 1, cache_size: int = 64) -> None:
        self._pool = WorkerPool(workers)
        self._cache: OrderedDict[tuple[str, int], bytes] = OrderedDict()
        self._sizes: OrderedDict[str, list[tuple[int, int]]] = OrderedDict()
        self._cache_size = cache_size

    async def page_sizes(self, digest: str, pdf: bytes) -> list[tuple[int, int]]:
        if digest not in self._sizes:
            self._sizes[digest] = await self._pool.run(page_sizes, pdf)
            while len(self._sizes) > 16 * self._cache_size:
                self._sizes.popitem(last=False)
        return self._sizes[digest]

    async def page(self, digest: str, pdf: bytes, index: int) -> bytes:
        key = (digest, index)
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        png = await self._pool.run(render_page, pdf, index)
        self._cache[key] = png
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return png

    def close(self) -> None:
        self._pool.close()
