"""What the signer's in-process tests share: its worker pools (one per module) and the harness around its app."""

from collections.abc import AsyncIterator, Iterator

import pytest

from services.signer.pades import SigningPool
from services.signer.render import RenderPool
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
