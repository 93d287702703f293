"""Where intake checks a submission: in a worker process with a time and a
memory limit, so a hostile PDF (a bomb, a 100,000-deep array, an xref loop)
ends in a refusal to its source, never in a stuck message or a dead service.
"""

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from services.intake.domain import Examined, Submission, check_sender, oversized, timely
from services.intake.pdf import Limits, PdfInfo, inspect_pdf, ready
from shared.clock import now
from shared.contract import SubmitDocument
from shared.errors import CodedError
from shared.workers import WorkerDied, WorkerPool, WorkerTimedOut

__all__ = ["SubmissionChecks"]


class SubmissionChecks:
    """``await checks(examine, submission)`` for a message still to read, or ``await checks.command(submission,
    command)`` for a command already read from it.

    The due date is checked here, not in the worker: against the services' clock, which this process installed."""

    def __init__(
        self, limits: Limits, *, workers: int, seconds: float, memory_mb: int, link_ttl: timedelta = timedelta(days=21)
    ) -> None:
        self.limits = limits
        self.link_ttl = link_ttl
        self._workers, self._seconds, self._memory_mb = workers, seconds, memory_mb
        self._pool: WorkerPool | None = None

    async def start(self) -> None:
        self._pool = WorkerPool(self._workers, memory_mb=self._memory_mb, nice=10, preload=(__name__, "services.intake.domain", "services.intake.pdf"))
        await self._pool.start_all(ready)  # so the second submission at once does not wait for a process to start

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()

    async def __call__(self, examine: Callable[..., Examined], submission: Submission, *args: object) -> Examined:
        if (refused := oversized(submission, self.limits)) is not None:
            return refused  # not even copied to a worker
        try:
            return timely(await self._in_worker(examine, submission, *args, self.limits), now(), self.link_ttl)
        except CodedError as refusal:
            return Examined(submission, refusal=refusal)

    async def command(self, submission: Submission, command: SubmitDocument) -> Examined:
        """As ``self(examine_command, submission, command)``, with only the PDF going to a worker and only its page
        count coming back: the message (the PDF again, in base64) and the command stay in this process."""
        if (refused := oversized(submission, self.limits)) is not None:
            return refused
        try:
            check_sender(submission, command)
            info: PdfInfo = await self._in_worker(inspect_pdf, command.pdf, self.limits)
        except CodedError as refusal:
            return Examined(submission, refusal=refusal)
        return timely(Examined(submission, command=command, page_count=info.page_count), now(), self.link_ttl)

    async def _in_worker(self, function: Callable[..., Any], *args: object) -> Any:
        """``function(*args)`` in a worker; CodedError ``pdf_too_complex`` when it runs out of time or memory."""
        assert self._pool is not None, "start() first"
        try:
            return await self._pool.run(function, *args, timeout=self._seconds)
        except WorkerTimedOut:
            why = f"the PDF could not be checked within {self._seconds:g} s (PARAAF_PDF_CHECK_SECONDS)"
        except WorkerDied:
            why = f"checking the PDF took more than {self._memory_mb} MB of memory (PARAAF_PDF_CHECK_MB)"
        raise CodedError("pdf_too_complex", f"{why}; send a simpler PDF")
