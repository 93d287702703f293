"""The signer's worker processes: failures come back to the caller, a dead worker is replaced."""

import os
import signal
from collections.abc import Iterator

import pytest

from services.signer.workers import WorkerDied, WorkerPool


def _pid() -> int:
    return os.getpid()


def _refuse(reason: str) -> None:
    raise ValueError(reason)


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


@pytest.fixture
def pool() -> Iterator[WorkerPool]:
    workers = WorkerPool(2)
    yield workers
    workers.close()


async def test_one_job_at_a_time_goes_to_the_same_warm_worker(pool: WorkerPool) -> None:
    """Ten jobs one after the other all run in one process, not alternating between the two."""
    pids = {await pool.run(_pid) for _ in range(10)}
    assert len(pids) == 1 and os.getpid() not in pids


async def test_a_failing_job_raises_in_the_caller_and_the_worker_goes_on(pool: WorkerPool) -> None:
    """A job's exception reaches the caller as is; the same worker takes the next job."""
    before = await pool.run(_pid)
    with pytest.raises(ValueError, match="not a PDF"):
        await pool.run(_refuse, "not a PDF")
    assert await pool.run(_pid) == before


async def test_a_worker_killed_mid_job_is_replaced(pool: WorkerPool) -> None:
    """A worker killed while working raises WorkerDied for that job; the next job runs in a new process."""
    before = await pool.run(_pid)
    with pytest.raises(WorkerDied):
        await pool.run(_die)
    after = await pool.run(_pid)
    assert after != before
