"""What makes a submitted PDF acceptable. Pure: bytes in, verdict out.

We parse the file with the same library that will sign it, so a PDF we accept
is one we can sign.
"""

import io
from dataclasses import dataclass

from pyhanko.pdf_utils.misc import PdfError
from pyhanko.pdf_utils.reader import PdfFileReader

__all__ = ["PdfInfo", "PdfRefused", "inspect_pdf"]


@dataclass(frozen=True)
class PdfInfo:
    page_count: int


class PdfRefused(ValueError):
    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def _size(n: int) -> str:
    return f"{n / 1_048_576:.1f} MB" if n >= 1_048_576 else f"{n / 1024:.0f} KB"


def inspect_pdf(data: bytes, *, max_bytes: int) -> PdfInfo:
    """Refuse what is not a readable, unencrypted PDF of at most ``max_bytes``."""
    if len(data) > max_bytes:
        raise PdfRefused("too_large", f"the PDF is {_size(len(data))}; the limit is {_size(max_bytes)}")
    if b"%PDF-" not in data[:1024]:
        raise PdfRefused("not_pdf", "the file is not a PDF (it does not start with %PDF-)")
    try:
        reader = PdfFileReader(io.BytesIO(data), strict=False)
        if reader.encrypt_dict is not None:
            raise PdfRefused("encrypted_pdf", "the PDF is encrypted or password-protected; send it unprotected")
        page_count = int(reader.root["/Pages"]["/Count"])
        reader.root["/Pages"]["/Kids"][0].get_object()
    except PdfRefused:
        raise
    except (PdfError, KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
        raise PdfRefused("broken_pdf", f"the PDF cannot be read ({exc.__class__.__name__}: {exc})") from None
    if page_count < 1:
        raise PdfRefused("broken_pdf", "the PDF has no pages")
    return PdfInfo(page_count=page_count)
