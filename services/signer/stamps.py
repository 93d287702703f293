"""What a signature stamp says and where it goes. Pure rules, no PDF I/O.

A stamp goes on a placeholder text ``[SIG01]``, ``[SIG02]``, ... when the
document has one for that signature (the n-th signature takes ``[SIGnn]``),
otherwise along the bottom of the last page, left to right, then upwards.
"""

import re
from datetime import datetime
from zoneinfo import ZoneInfo

from shared.events import PersonRef

__all__ = [
    "PLACEHOLDER",
    "STAMP_HEIGHT",
    "STAMP_WIDTH",
    "Box",
    "bottom_box",
    "field_name",
    "on_behalf_text",
    "placeholder_box",
    "stamp_text",
]

Box = tuple[int, int, int, int]  # llx, lly, urx, ury in PDF points

STAMP_WIDTH, STAMP_HEIGHT, MARGIN, GAP = 170, 64, 28, 8  # three stamps a row on A4
PLACEHOLDER = re.compile(r"\[SIG(\d{2})\]")

# The words on the stamp, in the signer's language; "wnd." (waarnemend) is
# what Flemish administrations write for a substitute.
_WORDS = {
    "nl": ("Digitaal ondertekend door", "wnd."),
    "fr": ("Signé numériquement par", "p.o."),
    "en": ("Digitally signed by", "on behalf of"),
}


def field_name(number: int) -> str:
    """The signature field of the ``number``-th signature Paraaf puts in a document (1-based)."""
    return f"Signature{number}"


def on_behalf_text(on_behalf_of: PersonRef, language: str = "nl") -> str:
    """E.g. "wnd. burgemeester (Bart Baert)"."""
    wnd = _WORDS.get(language, _WORDS["nl"])[1]
    if on_behalf_of.title:
        return f"{wnd} {on_behalf_of.title} ({on_behalf_of.name})"
    return f"{wnd} {on_behalf_of.name}"


def stamp_text(signer: PersonRef, on_behalf_of: PersonRef | None, signed_at: datetime, timezone: str) -> str:
    """Name, function, "wnd. <function>" for a substitute, and local date and time."""
    heading = _WORDS.get(signer.language, _WORDS["nl"])[0]
    local = signed_at.astimezone(ZoneInfo(timezone))
    lines = [heading, signer.name]
    if signer.title:
        lines.append(signer.title)
    if on_behalf_of is not None:
        wnd = _WORDS.get(signer.language, _WORDS["nl"])[1]
        lines.append(f"{wnd} {on_behalf_of.title or on_behalf_of.name}")
    lines.append(local.strftime("%d-%m-%Y %H:%M %Z"))
    return "\n".join(lines)


def bottom_box(media_box: tuple[float, float, float, float], index: int) -> Box:
    """The ``index``-th (0-based) stamp slot along the bottom of a page."""
    llx, lly, urx, _ury = media_box
    per_row = max(1, int((urx - llx - 2 * MARGIN + GAP) // (STAMP_WIDTH + GAP)))
    row, column = divmod(index, per_row)
    x = int(llx + MARGIN + column * (STAMP_WIDTH + GAP))
    y = int(lly + MARGIN + row * (STAMP_HEIGHT + GAP))
    return (x, y, x + STAMP_WIDTH, y + STAMP_HEIGHT)


def placeholder_box(media_box: tuple[float, float, float, float], left: float, top: float) -> Box:
    """A stamp whose top-left corner sits on the placeholder's, kept inside the page."""
    llx, lly, urx, ury = media_box
    top += 3  # cover the placeholder's ascenders too
    x = int(min(max(left - 2, llx), urx - STAMP_WIDTH))
    y = int(min(max(top - STAMP_HEIGHT, lly), ury - STAMP_HEIGHT))
    return (x, y, x + STAMP_WIDTH, y + STAMP_HEIGHT)
