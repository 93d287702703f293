"""The directory in the router's schema: reading it (cached per org, reloaded
when its version moves), replacing it from an import, and absences."""

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

import asyncpg

from services.router.domain import Absence, Directory, Group, Person, Role
from services.router.importer import ImportError_, Problem

__all__ = [
    "ABSENCES_CHANNEL",
    "DirectoryCache",
    "add_absence",
    "apply_directory",
    "bump_directory",
    "list_absences",
    "load_directory",
    "remove_absence",
]

ABSENCES_CHANNEL = "router_absences"  # NOTIFY wakes the router's absence scheduler


class DirectoryCache:
    """Each org's directory, read once and read again only after it changed."""

    def __init__(self) -> None:
        self._cached: dict[str, tuple[int, Directory]] = {}

    async def get(self, conn: asyncpg.Connection, org: str) -> Directory:
        version = await conn.fetchval("SELECT version FROM router.directory_version WHERE org = $1", org) or 0
        cached = self._cached.get(org)
        if cached is not None and cached[0] == version:
            return cached[1]
        directory = await load_directory(conn, org)
        self._cached[org] = (version, directory)
        return directory


async def load_directory(conn: asyncpg.Connection, org: str, *, absences_from: str = "import,api") -> Directory:
    people = await conn.fetch("SELECT id, name, email, department, language FROM router.people WHERE org = $1", org)
    roles = await conn.fetch("SELECT key, title, holders FROM router.roles WHERE org = $1", org)
    substitutes = await conn.fetch("SELECT person_id, substitutes FROM router.substitutes WHERE org = $1", org)
    absences = await conn.fetch(
        "SELECT person_id, starts_at, ends_at FROM router.absences WHERE org = $1 AND source = ANY($2::text[])"
        " ORDER BY starts_at",
        org,
        absences_from.split(","),
    )
    groups = await conn.fetch("SELECT key, departments, shielded FROM router.groups WHERE org = $1", org)
    by_person: dict[str, list[Absence]] = {}
    for row in absences:
        by_person.setdefault(row["person_id"], []).append(Absence(row["person_id"], row["starts_at"], row["ends_at"]))
    return Directory(
        people={r["id"]: Person(**dict(r)) for r in people},
        roles={r["key"]: Role(key=r["key"], title=r["title"], holders=tuple(r["holders"])) for r in roles},
        substitutes={r["person_id"]: tuple(r["substitutes"]) for r in substitutes},
        absences={person_id: tuple(items) for person_id, items in by_person.items()},
        groups={r["key"]: Group(key=r["key"], departments=tuple(r["departments"]), shielded=r["shielded"]) for r in groups},
    )


async def bump_directory(conn: asyncpg.Connection, org: str) -> None:
    await conn.execute(
        "INSERT INTO router.directory_version (org, version) VALUES ($1, 1)"
        " ON CONFLICT (org) DO UPDATE SET version = router.directory_version.version + 1",
        org,
    )
    await conn.execute(f"NOTIFY {ABSENCES_CHANNEL}")


@dataclass(frozen=True)
class Change:
    added: int
    changed: int
    removed: int


def _diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> Change:
    return Change(
        added=len(new.keys() - old.keys()),
        changed=sum(1 for k in new.keys() & old.keys() if new[k] != old[k]),
        removed=len(old.keys() - new.keys()),
    )


def _absence_keys(directory: Directory) -> dict[tuple[str, datetime, datetime], Absence]:
    return {(a.person_id, a.starts_at, a.ends_at): a for items in directory.absences.values() for a in items}


def _removed(signer: str, directory: Directory) -> bool:
    kind, _, key = signer.partition(":")
    return (kind == "person" and key not in directory.people) or (kind == "role" and key not in directory.roles)


async def _still_needed(conn: asyncpg.Connection, org: str, directory: Directory) -> list[Problem]:
    """People and roles that loaded flows, running ad-hoc flows or open requests still name cannot be removed."""
    users = [
        (f"flow `{r['key']}`", r["steps"])
        for r in await conn.fetch("SELECT key, steps FROM router.flows WHERE org = $1", org)
    ] + [
        (f"document {r['document_id']}", r["steps"])
        for r in await conn.fetch(
            "SELECT document_id, steps FROM router.instances WHERE org = $1 AND status = 'active' AND flow_key IS NULL",
            org,
        )
    ]
    problems = [
        Problem(where, f"names {signer}, which this import removes")
        for where, steps in users
        for step in steps
        for signer in step["signers"]
        if _removed(signer, directory)
    ]
    pending = await conn.fetch(
        "SELECT DISTINCT person_id FROM router.requests WHERE org = $1 AND status = 'pending'", org
    )
    problems += [
        Problem(f"person `{row['person_id']}`", "has requests waiting and cannot be removed yet")
        for row in pending
        if row["person_id"] not in directory.people
    ]
    return problems


async def apply_directory(conn: asyncpg.Connection, org: str, directory: Directory) -> dict[str, Change]:
    """Make ``org``'s stored directory equal ``directory`` (imported absences only); count what changed.

    Unchanged absences keep their rows, so an absence that already moved
    requests is not applied twice; absences added through the API stay.
    """
    before = await load_directory(conn, org, absences_from="import")
    problems = await _still_needed(conn, org, directory)
    if problems:
        raise ImportError_(problems)
    old_absences, new_absences = _absence_keys(before), _absence_keys(directory)
    summary = {
        "people": _diff(before.people, directory.people),
        "roles": _diff(before.roles, directory.roles),
        "substitutes": _diff(before.substitutes, directory.substitutes),
        "absences": Change(
            added=len(new_absences.keys() - old_absences.keys()), changed=0, removed=len(old_absences.keys() - new_absences.keys())
        ),
        "groups": _diff(before.groups, directory.groups),
    }
    for table in ("roles", "people", "substitutes", "groups"):
        await conn.execute(f"DELETE FROM router.{table} WHERE org = $1", org)
    await conn.copy_records_to_table(
        "people",
        schema_name="router",
        columns=["org", "id", "name", "email", "department", "language"],
        records=[(org, *asdict(p).values()) for p in directory.people.values()],
    )
    await conn.copy_records_to_table(
        "roles",
        schema_name="router",
        columns=["org", "key", "title", "holders"],
        records=[(org, r.key, r.title, list(r.holders)) for r in directory.roles.values()],
    )
    await conn.copy_records_to_table(
        "substitutes",
        schema_name="router",
        columns=["org", "person_id", "substitutes"],
        records=[(org, person_id, list(row)) for person_id, row in directory.substitutes.items()],
    )
    await conn.copy_records_to_table(
        "groups",
        schema_name="router",
        columns=["org", "key", "departments", "shielded"],
        records=[(org, g.key, list(g.departments), g.shielded) for g in directory.groups.values()],
    )
    for person_id, starts_at, ends_at in old_absences.keys() - new_absences.keys():
        await conn.execute(
            "DELETE FROM router.absences WHERE org = $1 AND source = 'import' AND person_id = $2"
            " AND starts_at = $3 AND ends_at = $4",
            org,
            person_id,
            starts_at,
            ends_at,
        )
    for person_id, starts_at, ends_at in new_absences.keys() - old_absences.keys():
        await conn.execute(
            "INSERT INTO router.absences (id, org, person_id, starts_at, ends_at, source) VALUES ($1, $2, $3, $4, $5, 'import')",
            uuid4(),
            org,
            person_id,
            starts_at,
            ends_at,
        )
    if any(asdict(change) != {"added": 0, "changed": 0, "removed": 0} for change in summary.values()):
        await bump_directory(conn, org)
    return summary


class UnknownPerson(LookupError):
    pass


async def add_absence(
    conn: asyncpg.Connection, org: str, person_id: str, starts_at: datetime, ends_at: datetime, note: str = ""
) -> UUID:
    if not await conn.fetchval("SELECT 1 FROM router.people WHERE org = $1 AND id = $2", org, person_id):
        raise UnknownPerson(f"person `{person_id}` is not in the directory")
    if ends_at <= starts_at:
        raise ValueError("`to` must come after `from` (`to` is the first moment back)")
    absence_id = uuid4()
    await conn.execute(
        "INSERT INTO router.absences (id, org, person_id, starts_at, ends_at, source, note)"
        " VALUES ($1, $2, $3, $4, $5, 'api', $6)",
        absence_id,
        org,
        person_id,
        starts_at,
        ends_at,
        note,
    )
    await bump_directory(conn, org)
    return absence_id


async def list_absences(conn: asyncpg.Connection | asyncpg.Pool, org: str, person_id: str | None = None) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT id, person_id, starts_at, ends_at, source, note, applied_at FROM router.absences"
        " WHERE org = $1 AND ($2::text IS NULL OR person_id = $2) ORDER BY starts_at",
        org,
        person_id,
    )


async def remove_absence(conn: asyncpg.Connection, org: str, absence_id: UUID) -> bool:
    """Remove an absence; work it already moved stays where it went."""
    removed = await conn.fetchval(
        "DELETE FROM router.absences WHERE org = $1 AND id = $2 RETURNING true", org, absence_id
    )
    if removed:
        await bump_directory(conn, org)
    return bool(removed)
