"""The backoff policy and Retry-After parsing."""

from __future__ import annotations

import random
from email.utils import formatdate
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from imaginebuild.errors import UsageError
from imaginebuild.model import ProviderSettings
from imaginebuild.providers.base import ProviderContext
from imaginebuild.providers.xai.provider import BACKOFF_ENV, XaiProvider
from imaginebuild.retry import (
    RetryPolicy,
    is_retryable_status,
    parse_retry_after,
    policy_with_backoff,
)


class FixedRandom(random.Random):
    """A Random whose `random()` always returns one value."""

    def __init__(self, value: float) -> None:
        super().__init__(0)
        self.value = value

    def random(self) -> float:
        return self.value


def test_backoff_doubles_and_caps_without_jitter() -> None:
    policy = RetryPolicy(max_retries=10, base_delay=0.5, max_delay=4.0, jitter=0.0)
    delays = [policy.delay(n, None, random.Random(1)) for n in range(6)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]


def test_jitter_only_shortens_within_its_fraction() -> None:
    policy = RetryPolicy(base_delay=2.0, jitter=0.5)
    assert policy.delay(0, None, FixedRandom(0.0)) == 2.0
    assert policy.delay(0, None, FixedRandom(0.999999)) == pytest.approx(1.0, abs=1e-5)


@given(attempt=st.integers(0, 200), seed=st.integers(0, 2**32))
def test_delay_stays_within_bounds(attempt: int, seed: int) -> None:
    policy = RetryPolicy(base_delay=1.0, max_delay=30.0, jitter=0.5)
    delay = policy.delay(attempt, None, random.Random(seed))
    assert 0.0 <= delay <= 30.0


def test_retry_after_is_a_floor_and_is_capped() -> None:
    policy = RetryPolicy(base_delay=1.0, jitter=0.0, max_retry_after=100.0)
    assert policy.delay(0, 7.0, random.Random()) == 7.0
    assert policy.delay(5, 0.0, random.Random()) == 32.0  # backoff larger than the hint
    assert policy.delay(0, 10_000.0, random.Random()) == 100.0


def test_allows_counts_retries_not_attempts() -> None:
    policy = RetryPolicy(max_retries=2)
    assert [policy.allows(n) for n in range(4)] == [True, True, False, False]
    assert not RetryPolicy(max_retries=0).allows(0)


def test_policy_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        RetryPolicy(jitter=1.5)
    with pytest.raises(ValueError):
        RetryPolicy(max_retries=-1)


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_transient_statuses_are_retryable(status: int) -> None:
    assert is_retryable_status(status)


@pytest.mark.parametrize("status", [200, 400, 401, 403, 404, 405, 415, 422, 501])
def test_other_statuses_are_not_retryable(status: int) -> None:
    assert not is_retryable_status(status)


def test_parse_delta_seconds() -> None:
    assert parse_retry_after("120", now=0.0) == 120.0
    assert parse_retry_after(" 0 ", now=0.0) == 0.0
    assert parse_retry_after("1.5", now=0.0) == 1.5


def test_parse_http_date() -> None:
    now = 1_800_000_000.0
    assert parse_retry_after(formatdate(now + 30, usegmt=True), now) == pytest.approx(30.0)
    assert parse_retry_after(formatdate(now - 30, usegmt=True), now) == 0.0


@pytest.mark.parametrize("value", ["", "soon", "-3", "nan", "inf", "Wed, 99 Foo 2026"])
def test_parse_rejects_garbage(value: str) -> None:
    assert parse_retry_after(value, now=0.0) is None


def test_a_backoff_setting_names_the_first_delay_and_the_cap() -> None:
    assert policy_with_backoff(3, None, "B") == RetryPolicy(max_retries=3)
    assert policy_with_backoff(3, " ", "B") == RetryPolicy(max_retries=3)
    fast = policy_with_backoff(2, "0.005,0.02", "B")
    assert fast == RetryPolicy(max_retries=2, base_delay=0.005, max_delay=0.02)
    assert [fast.delay(n, None, FixedRandom(0.0)) for n in range(4)] == [0.005, 0.01, 0.02, 0.02]


@pytest.mark.parametrize("setting", ["0.1", "a,b", "1,2,3", "-1,2", "nan,1", "1,inf"])
def test_a_bad_backoff_setting_is_a_usage_error_naming_it(setting: str) -> None:
    with pytest.raises(UsageError, match=f"SETTING={setting!r}: expected BASE,MAX") as caught:
        policy_with_backoff(2, setting, "SETTING")
    assert caught.value.exit_code == 2


def test_the_xai_provider_reads_its_backoff_from_the_environment(tmp_path: Path) -> None:
    def provider(env: dict[str, str]) -> XaiProvider:
        settings = ProviderSettings(max_retries=2)
        return XaiProvider(ProviderContext(settings=settings, state_dir=tmp_path, env=env))

    assert provider({}).policy == RetryPolicy(max_retries=2)
    fast = provider({BACKOFF_ENV: "0.005,0.02"}).policy
    assert (fast.max_retries, fast.base_delay, fast.max_delay) == (2, 0.005, 0.02)
    with pytest.raises(UsageError, match=BACKOFF_ENV):
        provider({BACKOFF_ENV: "soon"})
