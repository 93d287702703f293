"""A database `paraaf setup` already ran on, made once per test session, which the databases of tests that provision
theirs are copied from (``CREATE DATABASE ... TEMPLATE``).

Running every migration of every schema took ~0.6 s of a test's set-up on a quiet machine and ~1 s on a busy one; a
copy takes ~0.1 s. `paraaf setup` still runs on the copy, as the test asks for it (its roles, grants and database-level
rights are checked and made again, and whatever the test adds to the default, such as the probe's schema, is
migrated), so a test sees the state `paraaf setup` leaves, only reached from a database it already ran on.
Roles are global to the server and per session (``paraaf_t<pid>``), the same for the template and its copies.
"""

from collections.abc import Callable
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from services.admin.config import AdminSettings
from services.admin.database import setup_database

__all__ = ["SetUpTemplate"]


class SetUpTemplate:
    def __init__(self, admin_url: str, name: str, settings_for: Callable[[str], AdminSettings]) -> None:
        """``settings_for(database_url)``: the session's settings for a database (its roles' prefix, its secrets)."""
        self._admin_url = admin_url
        self.name = name
        self._settings_for = settings_for
        self._made = False

    async def ready(self) -> str:
        """The template's name, made on first use: a new database that `paraaf setup` ran on, with nobody connected."""
        if not self._made:
            admin = await asyncpg.connect(self._admin_url)
            try:
                await admin.execute(f'CREATE DATABASE "{self.name}"')
            finally:
                await admin.close()
            await setup_database(self._settings_for(self._url()))
            self._made = True
        return self.name

    async def drop(self) -> None:
        if self._made:
            admin = await asyncpg.connect(self._admin_url)
            try:
                await admin.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
            finally:
                await admin.close()

    def _url(self) -> str:
        return urlunsplit(urlsplit(self._admin_url)._replace(path="/" + self.name))
