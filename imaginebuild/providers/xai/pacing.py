"""Pacing within xAI's rate limits: a token bucket per model for submissions, one for polls.

xAI limits requests per team and per model, the same on every tier: 5 per second
for each image model and 1 per second for each video model (docs.x.ai "Rate
limits", https://docs.x.ai/docs/key-information/consumption-and-rate-limits);
above it the API answers 429. Whether polls count is not documented, so they
draw on a bucket of their own (`poll_rate`, default 10 per second across all
jobs) and never take a submission's turn.

A bucket holds one token and refills at the rate less `HEADROOM` (5 %) of the
interval, so requests leave evenly spaced and the arrival jitter of loopback
or the network never shows the API more than its limit. With a team
coordinator, its submission slots (`GenerationRequest.gate`) are the team-wide
limit and replace the in-process bucket: the two never wait twice for one turn.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping

IMAGE_RATE_PER_S = 5.0  # docs.x.ai rate limits: grok-imagine-image(-quality), all tiers
VIDEO_RATE_PER_S = 1.0  # docs.x.ai rate limits: grok-imagine-video(-1.5), all tiers
DEFAULT_POLL_RATE_PER_S = 10.0  # our own budget for polls (xAI documents none)
HEADROOM = 0.05  # intervals 5 % wider than the limit

SleepFn = Callable[[float], Awaitable[None]]


def documented_rate(model: str) -> float:
    """xAI's documented requests per second for a model (video models 1, image models 5)."""
    return VIDEO_RATE_PER_S if "video" in model else IMAGE_RATE_PER_S


def rate_bound_s(requests: int, rate_per_s: float) -> float:
    """The least time `requests` submissions take at `rate_per_s` (the first goes at once)."""
    return max(0, requests - 1) / rate_per_s if requests else 0.0


def rate_limit_bound_s(calls: Mapping[str, int], rates: Mapping[str, float] | None = None) -> float:
    """The least time `calls` (model → submissions) take at the rate limits alone: each
    model's submissions in turn, the models side by side."""
    limits = rates or {}
    return max(
        (rate_bound_s(n, float(limits.get(m) or documented_rate(m))) for m, n in calls.items()),
        default=0.0,
    )


class TokenBucket:
    """Hands out turns at most `rate` per second, in arrival order."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0:
            raise ValueError("a rate must be above zero")
        self.interval = (1.0 + HEADROOM) / rate
        self._clock = clock
        self._next = 0.0  # when the next turn may go
        self._lock = asyncio.Lock()

    async def take(self, sleep: SleepFn) -> float:
        """Wait for the next turn; the seconds waited."""
        async with self._lock:
            now = self._clock()
            wait = max(0.0, self._next - now)
            self._next = max(now, self._next) + self.interval
        if wait > 0:
            await sleep(wait)
        return wait


class Pacer:
    """The buckets of one provider: one per model for submissions, one for every poll."""

    def __init__(
        self,
        rates: Mapping[str, float] | None = None,
        poll_rate: float | None = None,
        *,
        sleep: SleepFn = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rates = dict(rates or {})
        self._sleep = sleep
        self._clock = clock
        self._buckets: dict[str, TokenBucket] = {}
        self._polls = TokenBucket(poll_rate or DEFAULT_POLL_RATE_PER_S, clock)
        self.waited_s = 0.0  # submissions' total wait, for reports

    def rate_for(self, model: str) -> float:
        """Submissions per second allowed for `model` (configured, else documented)."""
        return float(self.rates.get(model) or documented_rate(model))

    async def submit(self, model: str) -> None:
        """Wait for `model`'s next submission turn."""
        bucket = self._buckets.get(model)
        if bucket is None:
            bucket = self._buckets[model] = TokenBucket(self.rate_for(model), self._clock)
        self.waited_s += await bucket.take(self._sleep)

    async def poll(self) -> None:
        """Wait for the next poll turn (shared by every job)."""
        await self._polls.take(self._sleep)
