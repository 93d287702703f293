"""Intake's rules, pure: what makes a submitted PDF acceptable (bytes in,
verdict out), what a registered source may submit, and the filename a PDF
is passed on under.

We parse the file with the same library that will sign it, so a PDF we accept
is one we can sign.
"""

import io
import re
import unicodedata
from dataclasses import dataclass

from pyhanko.pdf_utils.misc import PdfError
from pyhanko.pdf_utils.reader import PdfFileReader

__all__ = ["Forbidden", "PdfInfo", "PdfRefused", "SourcePolicy", "authorise", "inspect_pdf", "safe_filename"]


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


# Which filenames intake passes on.

_UNSAFE_IN_NAME = re.compile(r'[\x00-\x1f\x7f"*/:<>?\\|]')
MAX_FILENAME = 120


def safe_filename(name: str) -> str:
    """The name a PDF is stored and offered under: no path, no control or reserved characters,
    at most :data:`MAX_FILENAME` characters, ending in ``.pdf``."""
    name = unicodedata.normalize("NFC", name).replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c for c in name if unicodedata.category(c) not in ("Cc", "Cf", "Cs", "Co"))
    name = " ".join(_UNSAFE_IN_NAME.sub("_", name).split()).strip(" .")
    stem = name[:-4] if name.lower().endswith(".pdf") else name
    stem = stem[: MAX_FILENAME - 4].rstrip(" .") or "document"
    return f"{stem}.pdf"


# Which submissions a source may make (`paraaf sources add`).


@dataclass(frozen=True)
class SourcePolicy:
    """A registered source: the one org it submits for, the flows and submitters it may use
    (None: any of its org's), and whether it may send ad-hoc steps instead of a flow."""

    source: str
    org: str
    flows: frozenset[str] | None = None
    submitters: frozenset[str] | None = None
    ad_hoc_steps: bool = False


class Forbidden(ValueError):
    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def authorise(policy: SourcePolicy, *, org: str | None, flow: str | None, has_steps: bool, submitted_by: str) -> str:
    """The org the submission goes to, or :class:`Forbidden` saying what the source may not do."""
    who = f"source `{policy.source}`"
    if org is not None and org != policy.org:
        raise Forbidden("forbidden_org", f"{who} submits for organisation `{policy.org}`, not `{org}`; leave out `org` or ask an administrator")
    if has_steps and not policy.ad_hoc_steps:
        raise Forbidden("forbidden_steps", f"{who} may not send its own `steps`; name one of its flows in `flow`")
    if flow is not None and policy.flows is not None and flow not in policy.flows:
        allowed = ", ".join(f"`{f}`" for f in sorted(policy.flows)) or "none"
        raise Forbidden("forbidden_flow", f"{who} may not use flow `{flow}`; its flows are {allowed}")
    if policy.submitters is not None and submitted_by not in policy.submitters:
        raise Forbidden("forbidden_submitter", f"{who} may not submit on behalf of `{submitted_by}`; ask an administrator to allow them")
    return policy.org
