"""Which submissions a source may make (`paraaf sources add`): kept apart from the
rules in domain.py, which read PDFs, so the store and the operator's commands can
name a policy without loading a PDF library."""

from dataclasses import dataclass

__all__ = ["SourcePolicy"]


@dataclass(frozen=True)
class SourcePolicy:
    """A registered source: the one org it submits for, the flows and submitters it may use
    (None: any of its org's), and whether it may send ad-hoc steps instead of a flow."""

    source: str
    org: str
    flows: frozenset[str] | None = None
    submitters: frozenset[str] | None = None
    ad_hoc_steps: bool = False
