"""One running demo city for the fault tests of a package, scaled out as issue 15 asks (router ×2, signer ×3,
notifier ×2, audit ×2), and the report they print at the end of the run: what was done to Paraaf and what it did,
so CI's log shows it."""

from collections.abc import AsyncIterator

import pytest

from tests.conftest import Infra, city_on_fresh_install
from tests.support import reports
from tests.support.invariants import assert_each_effect_once
from tests.support.system import SCALED, System


def report(line: str) -> None:
    """Add a line to the report at the end of the run (tests/support/reports.py: printed whichever worker ran the test)."""
    reports.add("faults and hostile input: what Paraaf did", line)


@pytest.fixture(scope="package")
async def city(infra: Infra, secrets_dir: str) -> AsyncIterator[System]:
    async with city_on_fresh_install(infra, secrets_dir, "faults", scale=SCALED) as system:
        yield system
        await assert_each_effect_once(system)
