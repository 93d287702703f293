"""Where intake checks a submission: in a worker process with a time and a
memory limit, so a hostile PDF (a bomb, a 100,000-deep array, an xref loop)
ends in a refusal to its source, never in a stuck message or a dead service.
"""

from collections.abc import Callable
from datetime import timedelta

from services.intake.domain import Examined, Submission, oversized, timely
from services.intake.pdf import Limits, ready
from shared.clock import now
from shared.errors import CodedError
from shared.workers import WorkerDied, WorkerPool, WorkerTimedOut

__all__ = ["SubmissionChecks"]


class SubmissionChecks:
    """``await checks(examine, submission)`` or ``await checks(examine_command, submission, command)``.

    The due date is checked here, not in the worker: against the services' clock, which this process installed."""

    def __init__(
        self, limits: Limits, *, workers: int, seconds: float, memory_mb: int, link_ttl: timedelta = timedelta(days=21)
    ) -> None:
        self.limits = limits
        self.link_ttl = link_ttl
        self._workers, self._seconds, self._memory_mb = workers, seconds, memory_mb
        self._pool: WorkerPool | None = None

    async def start(self) -> None:
        self._pool = WorkerPool(self._workers, memory_mb=self._memory_mb, nice=10)
        await self._pool.start_all(ready)  # so the second submission at once does not wait for a process to start

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()

    async def __call__(self, examine: Callable[..., Examined], submission: Submission, *args: object) -> Examined:
        assert self._pool is not None, "start() first"
        if (refused := oversized(submission, self.limits)) is not None:
            return refused  # not even copied to a worker
        try:
            return timely(await self._pool.run(examine, submission, *args, self.limits, timeout=self._seconds), now(), self.link_ttl)
        except WorkerTimedOut:
            why = f"the PDF could not be checked within {self._seconds:g} s (PARAAF_PDF_CHECK_SECONDS)"
        except WorkerDied:
            why = f"checking the PDF took more than {self._memory_mb} MB of memory (PARAAF_PDF_CHECK_MB)"
        return Examined(submission, refusal=CodedError("pdf_too_complex", f"{why}; send a simpler PDF"))
