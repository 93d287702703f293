"""Who may see a document, and how much: the one visibility policy every read
path asks (DESIGN.md "Visibility"), pure, so it can be tested person by
person and document by document.

- Nothing crosses an org.
- A shielded group's document (discipline, OCMW, social welfare) is seen by
  nobody outside that group, whatever else holds: not its submitter's
  department, not a signer who left the group. Operators see that it exists
  and its trail, never its title or PDF.
- A confidential document (a performance review) is seen only by its
  submitter and the people asked to sign or approve it (substitutes who were
  asked, and people whose request was moved away, included). Operators: the
  trail only.
- Any other document is seen by those, by the members of its flow's group,
  and by operators.
"""

from dataclasses import dataclass
from enum import IntEnum

__all__ = ["ADMIN_ROLE", "OPERATOR_ROLE", "Access", "DocumentFacts", "Viewer", "access"]

# Role keys in the directory (sheet `roles`) that give rights beyond one's own documents.
OPERATOR_ROLE = "operator"  # sees every document's metadata and trail; withdraws for anyone
ADMIN_ROLE = "admin"  # registers absences for anyone


class Access(IntEnum):
    """How much of a document a person sees; a read path needs at least the level it shows."""

    NONE = 0  # not even that it exists: its URL answers 404
    TRAIL = 1  # that it exists, its status, who acted when; never its title or PDF
    FULL = 2  # title, PDF, trail


@dataclass(frozen=True)
class Viewer:
    """A signed-in person: her org, the visibility groups her department belongs to, whether she is an operator."""

    org: str
    person_id: str
    groups: frozenset[str] = frozenset()
    operator: bool = False


@dataclass(frozen=True)
class DocumentFacts:
    """What the policy needs to know of a document: ``asked`` is everyone ever asked to sign or approve it."""

    org: str
    submitter: str
    asked: frozenset[str]
    group: str | None
    confidential: bool
    shielded: bool


def access(viewer: Viewer, document: DocumentFacts) -> Access:
    """How much of ``document`` ``viewer`` may see."""
    if viewer.org != document.org:
        return Access.NONE
    inside = document.group is not None and document.group in viewer.groups
    if document.shielded and not inside:
        return Access.TRAIL if viewer.operator else Access.NONE
    if viewer.person_id == document.submitter or viewer.person_id in document.asked:
        return Access.FULL
    if document.confidential:
        return Access.TRAIL if viewer.operator else Access.NONE
    return Access.FULL if inside or viewer.operator else Access.NONE
