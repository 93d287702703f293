"""Which submissions a source may make, and where its outcomes may be POSTed
(`paraaf sources add`): kept apart from the rules in domain.py, which read PDFs,
so the store and the operator's commands can name a policy without loading a PDF
library."""

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

__all__ = ["SourcePolicy", "webhook_url_problem"]


@dataclass(frozen=True)
class SourcePolicy:
    """A registered source: the one org it submits for, the flows and submitters it may use
    (None: any of its org's), and whether it may send ad-hoc steps instead of a flow."""

    source: str
    org: str
    flows: frozenset[str] | None = None
    submitters: frozenset[str] | None = None
    ad_hoc_steps: bool = False


def webhook_url_problem(url: str, *, allow_http: bool = False) -> str | None:
    """What is wrong with ``url`` as a source's webhook, or None. An outcome carries the signed PDF, so plain http
    is refused but to this machine itself (tests, a receiver beside Paraaf) or when an operator allowed it."""
    if not re.fullmatch(r"https?://[^\s/]+(/\S*)?", url):
        return f"--webhook must be an https URL, not `{url}`"
    if url.startswith("https://") or allow_http or _loopback(url):
        return None
    return (
        f"--webhook `{url}` is plain http: every outcome (the signed PDF with it) would cross the network unencrypted."
        " Give an https URL; http is taken only for 127.0.0.1, ::1 or localhost, or with PARAAF_WEBHOOK_ALLOW_HTTP=true"
    )


def _loopback(url: str) -> bool:
    try:
        host = urlsplit(url).hostname or ""
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:  # not an address (a name), or a malformed one
        return False
