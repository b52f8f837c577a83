"""When to try a provider request again, and after how long (sans-I/O: the caller sleeps and sends).

A phone turn has a first-token deadline (``conversation.run_turn``'s ``first_token_timeout``): a
retry is only worth starting if it can still answer before then. ``RetryPolicy.delay`` says how
long to wait before the next attempt, or ``None`` to give up:

* at most ``max_attempts`` attempts;
* a jittered exponential backoff ("full jitter": uniform in ``[0, min(cap, base × 2^n)]``), or the
  server's ``Retry-After`` when it gives one, capped at ``retry_after_max``;
* the attempt must be able to finish inside ``deadline`` (seconds since the first attempt
  started): the wait plus what the last attempt took (at least ``attempt_allowance``) must fit.
"""

from __future__ import annotations

import datetime
import email.utils
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

__all__ = ["RETRYABLE_STATUS", "RetryPolicy", "retry_after"]

#: Statuses worth a retry: rate limited, or the server (or a gateway before it) failed.
RETRYABLE_STATUS: Final = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How a request is retried; ``RetryPolicy(max_attempts=1)`` never retries."""

    max_attempts: int = 4
    deadline: float = 10.0
    attempt_allowance: float = 1.0
    backoff_base: float = 0.2
    backoff_max: float = 2.0
    retry_after_max: float = 5.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if min(self.deadline, self.backoff_base, self.backoff_max, self.retry_after_max) <= 0:
            raise ValueError("deadline, backoff and retry_after_max must be positive")
        if self.attempt_allowance < 0:
            raise ValueError("attempt_allowance must not be negative")

    def delay(
        self,
        attempts: int,
        *,
        elapsed: float,
        last_attempt: float,
        retry_after: float | None = None,
        rand: Callable[[], float] = random.random,
    ) -> float | None:
        """Seconds to wait before attempt ``attempts + 1``, or ``None``: give up.

        ``attempts`` made so far, ``elapsed`` seconds since the first started, ``last_attempt``
        seconds the last one took, ``retry_after`` what the server asked for.
        """
        if attempts >= self.max_attempts:
            return None
        if retry_after is not None:
            wait = min(max(retry_after, 0.0), self.retry_after_max)
        else:
            wait = rand() * min(self.backoff_max, self.backoff_base * 2 ** (attempts - 1))
        if elapsed + wait + max(last_attempt, self.attempt_allowance) > self.deadline:
            return None
        return wait


def retry_after(headers: Mapping[str, str], now: datetime.datetime | None = None) -> float | None:
    """Seconds the server asks us to wait: ``retry-after-ms``, else ``Retry-After`` (RFC 9110 §10.2.3).

    ``Retry-After`` is delay-seconds or an HTTP-date; anything unreadable counts as not given.
    ``headers`` is looked up with lowercase names (``callkit.net.Headers`` is case-insensitive).
    """
    milliseconds = headers.get("retry-after-ms", "").strip()
    try:
        if milliseconds:
            return max(float(milliseconds) / 1000, 0.0)
    except ValueError:
        pass
    value = headers.get("retry-after", "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        seconds = float(value)  # not RFC 9110, but providers send "0.1"
    except ValueError:
        pass
    else:
        return max(seconds, 0.0) if seconds == seconds else None  # NaN is not a delay
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    current = now or datetime.datetime.now(datetime.UTC)
    return max((when - current).total_seconds(), 0.0)
