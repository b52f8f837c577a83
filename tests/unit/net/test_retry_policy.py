"""``RetryPolicy`` and ``retry_after``: pure functions, no network."""

from __future__ import annotations

import datetime

import pytest

from callkit.net import RetryPolicy, retry_after

NOW = datetime.datetime(2026, 11, 24, 12, 0, 0, tzinfo=datetime.UTC)


def test_backoff_is_jittered_exponential_and_capped() -> None:
    policy = RetryPolicy(max_attempts=10, deadline=100, backoff_base=0.2, backoff_max=1.0)
    tops = [policy.delay(n, elapsed=0, last_attempt=0, rand=lambda: 1.0) for n in range(1, 6)]
    assert tops == [0.2, 0.4, 0.8, 1.0, 1.0]
    assert policy.delay(3, elapsed=0, last_attempt=0, rand=lambda: 0.5) == 0.4
    assert policy.delay(3, elapsed=0, last_attempt=0, rand=lambda: 0.0) == 0.0


def test_attempts_are_bounded() -> None:
    policy = RetryPolicy(max_attempts=3)
    assert policy.delay(2, elapsed=0, last_attempt=0) is not None
    assert policy.delay(3, elapsed=0, last_attempt=0) is None
    assert RetryPolicy(max_attempts=1).delay(1, elapsed=0, last_attempt=0) is None


def test_no_retry_that_cannot_finish_before_the_deadline() -> None:
    policy = RetryPolicy(deadline=10, attempt_allowance=1.0)
    # 8.5 s gone + 0.4 s wait + 1 s for the attempt fits in 10 s; with 9.0 s gone it does not.
    assert policy.delay(1, elapsed=8.5, last_attempt=0.1, retry_after=0.4) == 0.4
    assert policy.delay(1, elapsed=9.0, last_attempt=0.1, retry_after=0.4) is None
    # An attempt that took 3 s is expected to take 3 s again.
    assert policy.delay(1, elapsed=5.0, last_attempt=3.0, retry_after=2.5) is None


def test_retry_after_is_honoured_and_capped() -> None:
    policy = RetryPolicy(deadline=100, retry_after_max=5.0)
    assert policy.delay(1, elapsed=0, last_attempt=0, retry_after=0.1) == 0.1
    assert policy.delay(1, elapsed=0, last_attempt=0, retry_after=60) == 5.0
    assert policy.delay(1, elapsed=0, last_attempt=0, retry_after=-3) == 0.0


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"retry-after": "2"}, 2.0),
        ({"retry-after": "0.1"}, 0.1),
        ({"retry-after": "Tue, 24 Nov 2026 12:00:03 GMT"}, 3.0),
        ({"retry-after": "Tue, 24 Nov 2026 11:59:00 GMT"}, 0.0),
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),
        ({"retry-after-ms": "soon", "retry-after": "1"}, 1.0),
        ({"retry-after": "later"}, None),
        ({"retry-after": "nan"}, None),
        ({}, None),
    ],
)
def test_retry_after_header(headers: dict[str, str], seconds: float | None) -> None:
    assert retry_after(headers, NOW) == seconds


def test_bad_policies() -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError, match="positive"):
        RetryPolicy(deadline=0)
