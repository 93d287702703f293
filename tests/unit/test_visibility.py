"""The visibility policy over a seeded city: for every person and every document, what she may see matches a
table written by hand from DESIGN.md "Visibility" — not computed from the policy. The rows a naive design
(submitter, signers and the flow's group, nothing more) would get wrong are marked LEAK."""

import pytest

from shared.visibility import Access, DocumentFacts, Viewer, access

FULL, TRAIL, NONE = Access.FULL, Access.TRAIL, Access.NONE

# People of `stad` (and one of `othercity`) with the visibility groups of their departments.
PEOPLE = {
    "elen": Viewer("stad", "elen", frozenset({"secretariaat"})),  # secretariat, submits council decisions
    "ann": Viewer("stad", "ann", frozenset({"secretariaat"})),  # algemeen directeur
    "bart": Viewer("stad", "bart", frozenset({"secretariaat", "tucht"})),  # burgemeester: also signs discipline
    "hilde": Viewer("stad", "hilde", frozenset({"hr"})),  # head of HR, writes the performance review
    "hannes": Viewer("stad", "hannes", frozenset({"hr"})),  # her HR colleague
    "piet": Viewer("stad", "piet", frozenset({"techniek"})),  # the employee reviewed; signs his review
    "sofie": Viewer("stad", "sofie", frozenset({"sociaal"})),  # social worker (OCMW, shielded)
    "sara": Viewer("stad", "sara", frozenset({"sociaal"})),  # her colleague in the shielded group
    "olaf": Viewer("stad", "olaf", frozenset({"sociaal"})),  # OCMW chair, signs the welfare decision
    "wout": Viewer("stad", "wout", frozenset({"techniek"})),  # was asked on the welfare decision, then moved away
    "dirk": Viewer("stad", "dirk", frozenset({"tucht"})),  # prepares disciplinary files (shielded)
    "tina": Viewer("stad", "tina", frozenset({"tucht"})),  # in the disciplinary group, not on this file
    "oscar": Viewer("stad", "oscar", frozenset({"ict"}), operator=True),  # operator
    "xavier": Viewer("othercity", "xavier", frozenset({"secretariaat"}), operator=True),  # another city's operator
}

DOCUMENTS = {
    "collegebesluit": DocumentFacts("stad", "elen", frozenset({"ann", "bart"}), "secretariaat", False, False),
    "performance review": DocumentFacts("stad", "hilde", frozenset({"piet"}), "hr", True, False),
    "welfare decision": DocumentFacts("stad", "sofie", frozenset({"olaf", "wout"}), "sociaal", False, True),
    "disciplinary file": DocumentFacts("stad", "dirk", frozenset({"bart"}), "tucht", True, True),
}

EXPECTED = {
    #            collegebesluit, performance review, welfare decision, disciplinary file
    "elen": (FULL, NONE, NONE, NONE),
    "ann": (FULL, NONE, NONE, NONE),
    "bart": (FULL, NONE, NONE, FULL),
    "hilde": (NONE, FULL, NONE, NONE),
    "hannes": (NONE, NONE, NONE, NONE),  # LEAK: the review's flow group is hr, but it is confidential
    "piet": (NONE, FULL, NONE, NONE),
    "sofie": (NONE, NONE, FULL, NONE),
    "sara": (NONE, NONE, FULL, NONE),
    "olaf": (NONE, NONE, FULL, NONE),
    "wout": (NONE, NONE, NONE, NONE),  # LEAK: once asked to sign the welfare decision, but outside the shielded group
    "dirk": (NONE, NONE, NONE, FULL),
    "tina": (NONE, NONE, NONE, NONE),  # LEAK: in the shielded group, but the file is also confidential
    "oscar": (FULL, TRAIL, TRAIL, TRAIL),  # LEAK (x3): an operator sees that they exist and their trail, no title, no PDF
    "xavier": (NONE, NONE, NONE, NONE),  # LEAK: same group key and an operator, but another city
}


@pytest.mark.parametrize("person", list(EXPECTED))
def test_each_person_sees_exactly_what_the_table_says(person: str) -> None:
    """For every document, the policy's answer for this person is the hand-written one."""
    seen = tuple(access(PEOPLE[person], document) for document in DOCUMENTS.values())
    assert seen == EXPECTED[person], dict(zip(DOCUMENTS, seen, strict=True))


def test_the_table_covers_every_person_and_document() -> None:
    """No person or document of the seeded city is left out of the expectations."""
    assert set(EXPECTED) == set(PEOPLE)
    assert all(len(row) == len(DOCUMENTS) for row in EXPECTED.values())
