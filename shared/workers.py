"""Worker processes for CPU-bound work on PDFs: signing, validating and
rendering (signer) and checking a submission (intake) must not stall the
event loop (20–400 ms each), PDFium is not thread-safe, and a hostile PDF
must not take its service down: a job runs with a time limit and, when
given, a memory limit; a worker over either is killed and replaced.

Workers are forked from a server process (multiprocessing's forkserver) that
imported the pools' ``preload`` modules once: a worker is ready in a fraction
of a second with pyHanko or PDFium already imported, instead of a new
interpreter importing them again (~1.5 s of CPU each; a signer starts four
workers, and a worker killed over a hostile PDF is replaced while the next
submission waits).

Unlike ``ProcessPoolExecutor``, which hands each job to whichever worker the
OS wakes first (so consecutive jobs alternate between workers), this pool
reuses the worker that finished last: with one signature at a time, as on a
normal day, the same process signs with warm caches (~3 ms a signature less,
measured with bench/signer.py). Each worker has its own pipe; the event loop
waits on it with ``add_reader``, without a helper thread.
"""

import asyncio
import contextlib
import multiprocessing
import os
import resource
import sys
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from typing import Any, NoReturn

import structlog

__all__ = ["WorkerDied", "WorkerPool", "WorkerTimedOut"]


class WorkerDied(RuntimeError):
    """The worker process ended while it had a job (killed, or out of memory)."""


class WorkerTimedOut(TimeoutError):
    """The job took longer than it was given; its worker was killed."""


def _serve(conn: Connection, memory_bytes: int | None, nice: int) -> None:
    os.nice(nice)  # a lower priority: a hostile job must not starve the service's own process of CPU
    if memory_bytes is not None:  # a job that wants more gets MemoryError, not the machine's memory
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    while True:
        try:
            function, args = conn.recv()
        except (EOFError, KeyboardInterrupt):
            _exit_at_once()
        try:
            reply = (True, function(*args))
        except Exception as exc:  # the job's failure goes back to the caller, the worker lives on
            reply = (False, exc)
        try:
            conn.send(reply)
        except Exception as exc:  # noqa: BLE001 - e.g. an exception that cannot be pickled
            conn.send((False, RuntimeError(repr(exc))))


def _exit_at_once() -> NoReturn:
    """The pool is done with this worker: end the process without the interpreter's teardown, which takes ~0.5 s
    once pyHanko is imported (seconds on a loaded machine) and has nothing to save: a worker keeps no state."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


# The modules every pool of this process asked the forkserver to import before it forks a worker (it starts with the
# first worker; a module asked for later is imported by each worker that needs it).
_PRELOAD: set[str] = set()


def _forkserver(preload: Sequence[str]) -> multiprocessing.context.ForkServerContext:
    context = multiprocessing.get_context("forkserver")
    if not set(preload) <= _PRELOAD:
        _PRELOAD.update(preload)
        context.set_forkserver_preload(sorted(_PRELOAD))
    return context


class _Worker:
    def __init__(self, context: multiprocessing.context.ForkServerContext, memory_bytes: int | None, nice: int) -> None:
        self.conn, child = context.Pipe()
        self.process = context.Process(target=_serve, args=(child, memory_bytes, nice), daemon=True, name="paraaf-worker")
        self.process.start()
        child.close()

    def stop(self) -> None:
        self.conn.close()
        self.process.join(timeout=5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()

    def kill(self) -> None:
        """End it now, whatever it is doing (abandoned or over its time)."""
        self.process.kill()
        self.process.join(timeout=5)
        self.conn.close()


class WorkerPool:
    def __init__(self, workers: int, *, memory_mb: int | None = None, nice: int = 0, preload: Sequence[str] = ()) -> None:
        """``memory_mb``: each worker's address-space limit (a job over it raises MemoryError in the caller);
        ``nice``: how much lower than the service the workers run (for untrusted input); ``preload``: the modules
        of the functions it will run, imported once by the forkserver."""
        self._size = max(1, workers)
        self._nice = nice
        self._memory = memory_mb * 1_048_576 if memory_mb else None
        self._context = _forkserver(preload)
        self._idle: list[_Worker] = []  # a stack: the last one to finish goes first
        self._all: list[_Worker] = []
        self._slots = asyncio.Semaphore(self._size)

    async def run(self, function: Callable[..., Any], *args: Any, timeout: float | None = None) -> Any:
        """``function(*args)`` in a worker process; both must be picklable (module-level functions, plain data).

        With ``timeout``, a job still running after that many seconds has its worker
        killed and raises :class:`WorkerTimedOut`.
        """
        await self._slots.acquire()
        worker = self._idle.pop() if self._idle else self._spawn()
        answered = False  # the worker answered (with a result or the job's own exception): it can take the next job
        try:
            ok, value = await asyncio.wait_for(self._call(worker, function, args), timeout)
            answered = True
        except TimeoutError:
            raise WorkerTimedOut(f"the job took longer than {timeout} s; its worker was stopped") from None
        finally:
            if answered and not _cancelled():
                self._idle.append(worker)
            else:
                # Dead, over its time, or abandoned mid-job (its late answer would reach the next caller): replace it.
                self._all.remove(worker)
                worker.kill()
            self._slots.release()
        if not ok:
            raise value
        return value

    async def start_all(self, warm_up: Callable[[], object] = os.getpid) -> None:
        """Start every worker now, running ``warm_up`` (a module-level function: its module is imported with it),
        so no job waits for a process to start and import what it needs."""
        await asyncio.gather(*(self.run(warm_up) for _ in range(self._size)))

    def _spawn(self) -> _Worker:
        worker = _Worker(self._context, self._memory, self._nice)
        self._all.append(worker)
        return worker

    async def _call(self, worker: _Worker, function: Callable[..., Any], args: tuple[Any, ...]) -> tuple[bool, Any]:
        """(True, result) or (False, the job's exception); WorkerDied when the worker itself is gone."""
        loop = asyncio.get_running_loop()
        ready = loop.create_future()
        try:
            worker.conn.send((function, args))
        except OSError:
            raise WorkerDied(f"worker process ended with exit code {worker.process.exitcode}") from None
        loop.add_reader(worker.conn.fileno(), lambda: ready.done() or ready.set_result(None))
        try:
            await ready
        finally:
            loop.remove_reader(worker.conn.fileno())
            # uvloop (libuv) leaves a watched descriptor non-blocking; the pipe's recv and send expect it blocking.
            os.set_blocking(worker.conn.fileno(), True)
        try:
            ok, value = worker.conn.recv()
        except (EOFError, OSError):
            structlog.get_logger().error("worker process died", exitcode=worker.process.exitcode)
            raise WorkerDied(f"worker process ended with exit code {worker.process.exitcode}") from None
        return ok, value

    def close(self) -> None:
        for worker in self._all:
            with contextlib.suppress(OSError):
                worker.stop()
        self._all.clear()
        self._idle.clear()


def _cancelled() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0
