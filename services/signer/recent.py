"""The PDFs this process read or wrote last, by digest, so that the same bytes are not fetched again.

A blob never changes (its name is its SHA-256), so a copy kept here is never stale. What a signature reads is
mostly what this process just had in hand: the request handler reads the original to find its placeholders, and
the first signer's page, its picture and the signature itself read that original again; the version a signature
writes is the one the next signer's page, picture and signature read. Each read saved is a round trip and the
whole PDF on the wire (a 30-page PDF is a few hundred kB), on both sides of it.
"""

from collections import OrderedDict

__all__ = ["RecentBlobs"]

MAX_BYTES = 64 * 1024 * 1024
MAX_BLOB = 8 * 1024 * 1024  # a larger PDF is rare and would push out many others: it is read each time


class RecentBlobs:
    """At most ``max_bytes`` of blobs, the least recently used going first."""

    def __init__(self, max_bytes: int = MAX_BYTES, max_blob: int = MAX_BLOB) -> None:
        self._max_bytes, self._max_blob = max_bytes, min(max_blob, max_bytes)
        self._blobs: OrderedDict[str, bytes] = OrderedDict()
        self._size = 0

    def get(self, digest: str) -> bytes | None:
        data = self._blobs.get(digest)
        if data is not None:
            self._blobs.move_to_end(digest)
        return data

    def keep(self, digest: str, data: bytes) -> None:
        """Keep ``data``, whose SHA-256 is ``digest`` (the caller computed or looked it up by that digest)."""
        if len(data) > self._max_blob or digest in self._blobs:
            return
        self._blobs[digest] = data
        self._size += len(data)
        while self._size > self._max_bytes:
            _, dropped = self._blobs.popitem(last=False)
            self._size -= len(dropped)

    def __len__(self) -> int:
        return len(self._blobs)
