"""The directory's use cases: reading it (cached per org, read again when its
version moves), replacing it from an import, and absences. Each runs on a
:class:`RouterStore` in the caller's transaction."""

from datetime import datetime
from uuid import UUID

from services.router.domain import Absence, Change, Directory, ImportRefused, directory_changes, still_named
from services.router.store import RouterStore

__all__ = ["DirectoryCache", "UnknownPerson", "add_absence", "import_directory"]


class UnknownPerson(LookupError):
    pass


class DirectoryCache:
    """Each org's directory, read once and read again only after it changed."""

    def __init__(self) -> None:
        self._cached: dict[str, tuple[int, Directory]] = {}

    def known(self, org: str) -> tuple[int, Directory] | None:
        """``org``'s directory as last read, and its version then, without asking whether it is still that one."""
        return self._cached.get(org)

    async def get(self, store: RouterStore, org: str) -> Directory:
        version = await store.directory_version(org)
        cached = self._cached.get(org)
        if cached is None or cached[0] != version:
            cached = self._cached[org] = (version, await store.load_directory(org))
        return cached[1]


async def import_directory(store: RouterStore, org: str, directory: Directory) -> dict[str, Change]:
    """Make ``org``'s directory ``directory``; what changed per sheet. Refused while a flow, a running
    ad-hoc flow or an open request still names someone the import removes."""
    users = [(f"flow `{f.key}`", f.steps) for f in await store.flows(org)]
    users += [(f"document {document_id}", steps) for document_id, steps in await store.running_ad_hoc_steps(org)]
    if problems := still_named(users, await store.people_waiting(org), directory):
        raise ImportRefused(problems)
    changes = directory_changes(await store.load_directory(org, absences_from=["import"]), directory)
    if any(not change.none for change in changes.values()):
        await store.replace_directory(org, directory)
    return changes


async def add_absence(
    store: RouterStore, org: str, person_id: str, starts_at: datetime, ends_at: datetime, *, note: str = "", source: str = "api"
) -> UUID:
    if not await store.has_person(org, person_id):
        raise UnknownPerson(f"person `{person_id}` is not in the directory")
    if ends_at <= starts_at:
        raise ValueError("`to` must come after `from` (`to` is the first moment back)")
    return await store.add_absence(org, Absence(person_id, starts_at, ends_at), source=source, note=note)
