"""Worker processes for PDF work: failures come back to the caller, a dead worker is replaced, a greedy job is
stopped by its memory or time limit and the worker after it is fresh; workers are forked with their pool's modules
already imported."""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.workers import WorkerDied, WorkerPool, WorkerTimedOut

ROOT = Path(__file__).resolve().parents[2]


def _pid() -> int:
    return os.getpid()


def _refuse(reason: str) -> None:
    raise ValueError(reason)


def _hog(megabytes: int) -> int:
    return len(bytearray(megabytes * 1_048_576))


def _sleep(seconds: float) -> None:
    time.sleep(seconds)


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


async def test_a_job_over_the_memory_limit_gets_memory_error_and_the_next_job_runs() -> None:
    """With a 300 MB limit, a job that asks for 1 GB fails with MemoryError in the caller instead of taking the
    machine's memory; the next job runs."""
    pool = WorkerPool(1, memory_mb=300)
    try:
        assert await pool.run(_hog, 10) == 10 * 1_048_576
        with pytest.raises(MemoryError):
            await pool.run(_hog, 1024)
        assert await pool.run(_hog, 10) == 10 * 1_048_576
    finally:
        pool.close()


async def test_a_job_over_its_time_is_stopped_and_its_worker_replaced(pool: WorkerPool) -> None:
    """A job still running after its timeout raises WorkerTimedOut; the next job runs in a new process."""
    before = await pool.run(_pid)
    with pytest.raises(WorkerTimedOut):
        await pool.run(_sleep, 30, timeout=0.5)
    assert await pool.run(_pid) != before


def _niceness() -> int:
    return os.nice(0)


async def test_workers_for_untrusted_input_run_at_a_lower_priority() -> None:
    """With nice=10, the worker runs 10 steps below the service, so a hostile PDF cannot starve the service's own
    process of CPU."""
    pool = WorkerPool(1, nice=10)
    try:
        assert await pool.run(_niceness) == min(os.nice(0) + 10, 19)
    finally:
        pool.close()


def _echo(data: bytes) -> bytes:
    return data


def test_large_jobs_pass_under_the_services_event_loop() -> None:
    """The services run on uvloop, whose watch on a descriptor leaves it non-blocking: a PDF larger than a pipe's
    buffer still goes to the worker and back, job after job (it broke the second job before the pool set the pipe
    back to blocking)."""
    import uvloop

    async def jobs() -> list[int]:
        workers = WorkerPool(1)
        try:
            payload = os.urandom(3 * 1_048_576)  # a scanned PDF's size, far over the 64 KiB a pipe holds
            return [len(await workers.run(_echo, payload, timeout=60)) for _ in range(3)]
        finally:
            workers.close()

    assert uvloop.run(jobs()) == [3 * 1_048_576] * 3


_PROBE = """
import asyncio, os, sys
from shared.workers import WorkerPool
import probe

async def main():
    pool = WorkerPool(1, preload=sys.argv[1:])
    try:
        imported, parent = await pool.run(probe.imported, "pyhanko.sign")
        print(imported, parent != os.getpid())
    finally:
        pool.close()

if __name__ == "__main__":
    asyncio.run(main())
"""


@pytest.mark.parametrize(("preload", "expected"), [(("services.signer.pades",), "True True"), ((), "False True")])
def test_a_worker_starts_with_its_pools_modules_already_imported(tmp_path: Path, preload: tuple[str, ...], expected: str) -> None:
    """A worker is forked from the forkserver, which imported the pool's modules once: pyHanko is there before the
    first job (and is not when the pool preloads nothing), and the worker is not a child of the service's process."""
    (tmp_path / "probe.py").write_text(
        "import os, sys\n\ndef imported(name):\n    return name in sys.modules, os.getppid()\n"
    )
    (tmp_path / "main.py").write_text(_PROBE)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}
    ran = subprocess.run(
        [sys.executable, str(tmp_path / "main.py"), *preload], capture_output=True, text=True, env=env, timeout=120
    )
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == expected
