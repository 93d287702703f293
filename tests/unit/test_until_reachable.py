"""A service starting while its servers cannot take it yet waits for them; a refusal stops it at once."""

import asyncpg
import pytest

from shared.service import until_reachable


def attempts(*failures: Exception):
    """An attempt that raises ``failures`` in turn, then answers; ``calls`` counts the tries."""
    left = list(failures)

    async def attempt() -> str:
        attempt.calls += 1  # type: ignore[attr-defined]
        if left:
            raise left.pop(0)
        return "connected"

    attempt.calls = 0  # type: ignore[attr-defined]
    return attempt


async def test_every_connection_slot_taken_is_waited_out() -> None:
    """PostgreSQL's "too many connections" (replicas starting while the slots are taken) is tried again, not fatal."""
    attempt = attempts(asyncpg.TooManyConnectionsError("remaining connection slots are reserved"), ConnectionRefusedError())
    assert await until_reachable("PostgreSQL", attempt, longest_wait=0.01) == "connected"
    assert attempt.calls == 3  # type: ignore[attr-defined]


async def test_a_refused_login_stops_the_start() -> None:
    """A wrong password is an answer: waiting would not change it."""
    attempt = attempts(asyncpg.InvalidPasswordError("password authentication failed"))
    with pytest.raises(asyncpg.InvalidPasswordError):
        await until_reachable("PostgreSQL", attempt, longest_wait=0.01)
