"""Towns for the many-cities tests and bench: each organisation its own directory (a clerk who submits, a
mayor who signs, an operator), one flow, one source, and a portal host of its own — a TCP forwarder on a port of
its own in front of the one signer, standing in for the proxy a provider puts each city's host behind."""

from dataclasses import dataclass
from pathlib import Path

from tests.support.forwarder import Forwarder
from tests.support.workbook import write

__all__ = ["Town", "portal_in_front_of", "town_directory", "town_flows"]

FLOW = """key: besluit
title: Besluit
department: Secretariaat
group: bestuur
confidential: false
steps:
  - action: sign
    signers: [role:burgemeester]
"""


@dataclass
class Town:
    key: str
    name: str
    portal: Forwarder

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.portal.port}"

    @property
    def source(self) -> str:
        return f"bron-{self.key}"

    def email(self, who: str) -> str:
        return f"{who}@{self.key}.example"

    @property
    def mayor(self) -> str:
        return self.email("burgemeester")

    @property
    def operator(self) -> str:
        return self.email("operator")


def portal_in_front_of(signer_port: int, taken: set[int]) -> Forwarder:
    """A forwarder to the signer on a port none of the services was given (they bind theirs only when they start)."""
    while (forwarder := Forwarder("127.0.0.1", signer_port)).port in taken:
        pass
    taken.add(forwarder.port)
    return forwarder


def town_directory(folder: Path, town: Town) -> Path:
    """The town's directory as its department head fills it in (.xlsx): people, roles, groups."""
    people = [["id", "name", "email", "department", "language", "manager"]]
    for who, name, department in (
        ("griffier", f"Griffier {town.name}", "Secretariaat"),
        ("burgemeester", f"Burgemeester {town.name}", "Bestuur"),
        ("operator", f"Operator {town.name}", "ICT"),
    ):
        people.append([who, name, town.email(who), department, "nl", ""])
    sheets = {
        "people": people,
        "roles": [["key", "title", "holders"], ["burgemeester", "burgemeester", "burgemeester"], ["operator", "operator", "operator"]],
        "substitutes": [["person", "substitutes"]],
        "absences": [["person", "from", "to"]],
        "groups": [["key", "departments", "shielded"], ["bestuur", "Bestuur, Secretariaat", "no"]],
    }
    folder.mkdir(parents=True, exist_ok=True)
    return write(folder / f"{town.key}.xlsx", sheets)


def town_flows(folder: Path) -> Path:
    """One flow, `besluit`: the mayor signs."""
    flows = folder / "flows"
    flows.mkdir(parents=True, exist_ok=True)
    (flows / "besluit.yaml").write_text(FLOW)
    return flows
