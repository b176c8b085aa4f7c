"""When to retry a failed HTTP call and how long to wait: a pure backoff policy.

Time and randomness come from the caller (`now`, `rng`), so tests drive them.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

from imaginebuild.errors import UsageError

# 429 and the 5xx a healthy retry can cure; 501/505 say the request will never work.
RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})


def is_retryable_status(status: int) -> bool:
    """Whether an HTTP status is transient (rate limit or server trouble)."""
    return status in RETRYABLE_STATUSES


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter, honouring `Retry-After`.

    `attempt` counts retries from 0: the n-th retry waits about
    `base_delay * 2**n` seconds, capped at `max_delay`, less up to `jitter`
    (a fraction) of it at random so that many clients do not retry in step.
    A server's `Retry-After` is a floor: we never retry sooner than it asks,
    but refuse to wait longer than `max_retry_after`.
    """

    max_retries: int = 4
    base_delay: float = 1.0
    max_delay: float = 60.0
    jitter: float = 0.5
    max_retry_after: float = 600.0

    def __post_init__(self) -> None:
        if self.max_retries < 0 or self.base_delay < 0 or self.max_delay < 0:
            raise ValueError("retry counts and delays must not be negative")
        if not 0.0 <= self.jitter <= 1.0:
            raise ValueError("jitter is a fraction between 0 and 1")

    def allows(self, attempt: int) -> bool:
        """Whether retry number `attempt` (0-based) may still be made."""
        return attempt < self.max_retries

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        """Seconds to wait before retry number `attempt` (0-based)."""
        backoff = min(self.max_delay, self.base_delay * math.pow(2.0, min(attempt, 62)))
        backoff *= 1.0 - self.jitter * rng.random()
        if retry_after is None:
            return backoff
        return max(backoff, min(max(retry_after, 0.0), self.max_retry_after))


def parse_retry_after(value: str, now: float) -> float | None:
    """Seconds to wait from a `Retry-After` header (delta-seconds or HTTP-date).

    `now` is the current Unix time (for the date form). Returns None when the
    value is neither form; a date in the past means "retry now" (0.0).
    """
    text = value.strip()
    if not text:
        return None
    if text.isdigit():
        return float(int(text))
    try:
        seconds = float(text)  # some servers send "1.5"; tolerate it
    except ValueError:
        pass
    else:
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # HTTP-dates are GMT by definition
        return None
    return max(0.0, when.timestamp() - now)


def policy_with_backoff(max_retries: int, setting: str | None, name: str) -> RetryPolicy:
    """A policy with the default backoff, or the one a `BASE,MAX` setting names (seconds:
    the first retry's delay and the cap). `name` is the setting's name for the error.

    Lets CI and the fault-injection tests compress backoff through real configuration
    instead of patching the policy; unset or empty means the default.
    """
    if not setting or not setting.strip():
        return RetryPolicy(max_retries=max_retries)
    try:
        base, cap = (float(part) for part in setting.split(","))
        if not (math.isfinite(base) and math.isfinite(cap)):
            raise ValueError("not finite")
        return RetryPolicy(max_retries=max_retries, base_delay=base, max_delay=cap)
    except ValueError:
        raise UsageError(
            f"{name}={setting!r}: expected BASE,MAX seconds (e.g. 0.005,0.02)",
            hint=f"unset {name} for the default backoff",
        ) from None
