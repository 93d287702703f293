"""What in-process tests share: the signer's worker pools (one per module) and the harness around its app; the audit log's schema."""

from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest

from services.signer.pades import SigningPool
from services.signer.render import RenderPool
from shared.db import connect_pool, migrate
from tests.support.audit_log import MIGRATIONS as AUDIT_MIGRATIONS
from tests.support.signer_harness import SignerHarness


@pytest.fixture(scope="module")
def signing_pool() -> Iterator[SigningPool]:
    pool = SigningPool(1)
    yield pool
    pool.close()


@pytest.fixture(scope="module")
def render_pool() -> Iterator[RenderPool]:
    pool = RenderPool(1)
    yield pool
    pool.close()


@pytest.fixture
async def signer(database_url: str, signing_pool: SigningPool, render_pool: RenderPool) -> AsyncIterator[SignerHarness]:
    async with SignerHarness(database_url, signing_pool, render_pool) as harness:
        yield harness


@pytest.fixture
async def audit_pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    """The test database with the audit log's schema."""
    pool = await connect_pool(database_url)
    await migrate(pool, "audit", [AUDIT_MIGRATIONS])
    yield pool
    await pool.close()
