"""How pytest-xdist shares the suite out over its workers (``make test``: ``pytest -n N --dist loadgroup``).

A worker runs a whole group, so what a group's tests share is set up once: a package's tests form one group when
they use a package-scoped fixture (tests/security's one running city), other tests their module's (a module's
city), or the group an ``xdist_group`` mark names. Groups go out heaviest first (the order of ``WEIGHT``), so a
long end-to-end module does not start last and hold up the end of the run.

xdist's own ``loadgroup`` learns a test's group from a suffix it puts on the test's node id, which pytest 9.2's
structured node ids ignore (pytest-dev/pytest-xdist#1386: every test is scheduled on its own). Here the workers
write the groups they computed to a file the controller names in ``workerinput`` and the controller's scheduler
reads it once every worker has collected.
"""

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import pytest

__all__ = ["WEIGHT", "group_of", "heaviest_first", "scheduler", "share_groups", "write_groups"]

WEIGHT = ("faults", "e2e", "cluster", "security", "integration", "unit")  # tests/<folder>, heaviest first
_KEY = "paraaf_groups_file"


def heaviest_first(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Folders by WEIGHT (stable: a module's tests stay together and in their order)."""

    def rank(item: pytest.Item) -> int:
        parts = item.path.relative_to(config.rootpath).parts
        return WEIGHT.index(parts[1]) if len(parts) > 2 and parts[1] in WEIGHT else len(WEIGHT)

    items.sort(key=rank)


def group_of(item: pytest.Item) -> str:
    for mark in item.iter_markers("xdist_group"):
        return str(mark.args[0] if mark.args else mark.kwargs.get("name", "default"))
    module = item.nodeid.split("::")[0]
    fixtures = getattr(item, "_fixtureinfo", None)
    packages = [
        definition.baseid
        for definitions in (fixtures.name2fixturedefs.values() if fixtures else ())
        for definition in definitions
        if definition.scope == "package" and definition.baseid and module.startswith(definition.baseid + "/")
    ]
    return max(packages, key=len, default=module)


def share_groups(node: Any) -> None:
    """Controller: tell a worker where to write the groups (one file for the run; every worker writes the same)."""
    config = node.config
    if config.getvalue("dist") != "loadgroup":
        return
    if not hasattr(config, "_paraaf_groups"):
        config._paraaf_groups = Path(tempfile.mkdtemp(prefix="paraaf-groups-")) / "groups.json"
    node.workerinput[_KEY] = str(config._paraaf_groups)


def write_groups(session: pytest.Session) -> None:
    """Worker: the group of every collected test, written before the worker reports its collection."""
    path = getattr(session.config, "workerinput", {}).get(_KEY)
    if path:
        mine = Path(f"{path}.{session.config.workerinput['workerid']}")
        mine.write_text(json.dumps({item.nodeid: group_of(item) for item in session.items}))
        os.replace(mine, path)


def scheduler(config: pytest.Config, log: Any) -> Any:
    """Controller: xdist's scheduling by scope, with the workers' groups as scopes, in collection order."""
    from xdist.scheduler import LoadScopeScheduling

    class ByGroup(LoadScopeScheduling):
        groups: dict[str, str] | None = None

        def _split_scope(self, nodeid: str) -> str:
            if self.groups is None:  # first asked once every worker's collection is in
                self.groups = json.loads(config._paraaf_groups.read_text())
            return self.groups.get(nodeid, nodeid.split("::")[0])

    config.option.loadscopereorder = False  # keep heaviest_first's order, not the most tests first
    return ByGroup(config, log)
