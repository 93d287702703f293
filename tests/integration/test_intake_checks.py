"""Intake's submission checks with real worker processes: a command already read has only its PDF checked in a
worker, and the worker's verdict (a page count, or a refusal raised there) comes back as it was."""

import json
from collections.abc import AsyncIterator

import pytest

from services.intake.checks import SubmissionChecks
from services.intake.domain import Submission, examine
from services.intake.pdf import Limits
from shared.contract import SubmitDocument
from tests.support.pdfs import hostile_pdf, make_pdf
from tests.support.system import submission


@pytest.fixture
async def checks() -> AsyncIterator[SubmissionChecks]:
    checks = SubmissionChecks(Limits(1_048_576), workers=1, seconds=30, memory_mb=1000)
    await checks.start()
    yield checks
    checks.close()


def read(pdf: bytes, publisher: str = "notula") -> tuple[Submission, SubmitDocument]:
    raw = json.dumps(submission(pdf)).encode()
    return Submission("submit.notula", raw, publisher), SubmitDocument.model_validate_json(raw)


async def test_a_command_is_accepted_with_the_page_count_its_worker_read(checks: SubmissionChecks) -> None:
    """A 3-page PDF from its own source: the command comes back with page count 3, and no refusal."""
    examined = await checks.command(*read(make_pdf(3)))
    assert (examined.refusal, examined.page_count) == (None, 3)
    assert examined.command is not None and examined.command.external_ref == "BESL-2026-0042"


async def test_a_pdf_refused_in_the_worker_is_refused_with_its_reason(checks: SubmissionChecks) -> None:
    """A PDF with JavaScript is refused as active_content, as reading the whole message in a worker refuses it."""
    submission_, command = read(hostile_pdf("javascript"))
    examined = await checks.command(submission_, command)
    assert examined.command is None and examined.refusal is not None and examined.refusal.code == "active_content"
    assert (await checks(examine, submission_)).refusal.code == "active_content"


async def test_a_command_from_another_publisher_is_refused_before_its_pdf_is_read(checks: SubmissionChecks) -> None:
    """Published by another source's user: source_mismatch, whatever the PDF."""
    examined = await checks.command(*read(b"not even a PDF", publisher="kassa"))
    assert examined.refusal is not None and examined.refusal.code == "source_mismatch"
