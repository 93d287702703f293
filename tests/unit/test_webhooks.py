"""The webhook sender's pure rules: how a delivery is signed, and when a failed one is tried again or given up."""

import hashlib
import hmac
from datetime import UTC, datetime, timedelta

from services.intake.webhooks import Backoff, sign

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
BACKOFF = Backoff(first=10, longest=3600, give_up_after=timedelta(hours=24))


def test_the_signature_is_the_hmac_of_timestamp_dot_body_under_the_sources_secret() -> None:
    """A receiver recomputes v1 from t and the raw body; another secret or another body gives another value."""
    header = sign("s3cret", 1_700_000_000, b'{"status":"completed"}')
    expected = hmac.new(b"s3cret", b'1700000000.{"status":"completed"}', hashlib.sha256).hexdigest()
    assert header == f"t=1700000000,v1={expected}"
    assert sign("other", 1_700_000_000, b'{"status":"completed"}') != header
    assert sign("s3cret", 1_700_000_000, b'{"status":"declined"}') != header


def test_each_wait_doubles_with_jitter_between_half_and_all_of_it() -> None:
    """After the n-th failure the wait is first * 2**(n-1), drawn between half and all of it."""
    waits = [(BACKOFF.next_attempt(n, START, START, jitter) - START).total_seconds() for n in (1, 2, 3) for jitter in (0.0, 0.999)]
    assert waits == [5.0, 9.995, 10.0, 19.99, 20.0, 39.98]


def test_the_wait_stops_growing_at_the_longest() -> None:
    """However many failures, one wait is at most ``longest``."""
    assert BACKOFF.next_attempt(40, START, START, 0.999) - START <= timedelta(seconds=3600)


def test_the_last_try_falls_on_the_deadline_and_after_it_the_delivery_is_given_up() -> None:
    """No wait reaches past created + give_up_after; a failure at or after that moment gives it up."""
    near_end = START + timedelta(hours=24) - timedelta(seconds=30)
    assert BACKOFF.next_attempt(12, START, near_end, 0.5) == START + timedelta(hours=24)
    assert BACKOFF.next_attempt(13, START, START + timedelta(hours=24), 0.5) is None
