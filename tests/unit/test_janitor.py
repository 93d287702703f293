"""The suite's clean-up thread (tests/support/janitor.py): the databases and vhosts it removes behind the tests."""

import threading

import pytest

from tests.support.janitor import Janitor


def test_jobs_run_in_the_order_handed_over_and_wait_returns_once_they_are_done() -> None:
    """``wait()`` returns only after every job handed over before it ran, in order, off the caller's thread."""
    janitor, done, threads = Janitor(), [], set()
    for n in range(5):
        janitor.later(f"job {n}", lambda n=n: (done.append(n), threads.add(threading.current_thread())))
    janitor.wait()
    assert done == [0, 1, 2, 3, 4] and threading.current_thread() not in threads
    janitor.close()


def test_a_failed_job_does_not_stop_the_others_and_fails_the_close() -> None:
    """A job that raises is named when the session closes the janitor; the jobs after it still run."""
    janitor, done = Janitor(), []
    janitor.later("dropping database x", lambda: 1 / 0)
    janitor.later("deleting vhost y", lambda: done.append("y"))
    with pytest.raises(AssertionError, match="dropping database x: ZeroDivisionError"):
        janitor.close()
    assert done == ["y"]
