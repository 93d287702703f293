"""Clean-up that no test waits for: dropping a test's database and deleting its vhost, done by one thread beside
the tests, in the order they were handed over, and finished when the session ends.

DROP DATABASE makes PostgreSQL take a checkpoint and waits for it (every dirty page of the server written and
synced), and a vhost's deletion waits for the broker to delete its queues: ~0.2 s idle and 0.5-1 s on a busy
machine at the end of each of the ~230 tests that have a database of their own, spent waiting on disks and
servers rather than computing. Nothing a test checks depends on when its database or vhost goes (each has a name
of its own), and a failed clean-up still fails the session: ``close()`` raises what went wrong.
"""

import queue
import threading
from collections.abc import Callable

__all__ = ["Janitor"]


class Janitor:
    def __init__(self) -> None:
        self._jobs: queue.Queue[tuple[str, Callable[[], None]] | None] = queue.Queue()
        self._failures: list[str] = []
        self._thread = threading.Thread(target=self._work, name="test-clean-up", daemon=True)
        self._thread.start()

    def later(self, what: str, job: Callable[[], None]) -> None:
        """Run ``job`` (``what`` names it in a failure) once the jobs handed over before it are done."""
        self._jobs.put((what, job))

    def wait(self) -> None:
        """Until every job handed over so far is done (before the session's roles go: a database not dropped yet
        still holds objects they own)."""
        self._jobs.join()

    def close(self) -> None:
        """Wait for every job and end the thread; raise if any job failed."""
        self._jobs.put(None)
        self._thread.join()
        if self._failures:
            raise AssertionError("test clean-up failed: " + "; ".join(self._failures))

    def _work(self) -> None:
        while (item := self._jobs.get()) is not None:
            what, job = item
            try:
                job()
            except Exception as error:  # noqa: BLE001 - kept and raised by close(), in the test's thread
                self._failures.append(f"{what}: {error!r}")
            finally:
                self._jobs.task_done()
