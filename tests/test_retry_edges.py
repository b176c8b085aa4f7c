"""The retry policy at its edges (the unit tests behind the mutation score): zero is a
valid delay, a fraction of a second of Retry-After is honoured as given, and each
refusal says what is wrong."""

from __future__ import annotations

import random

import pytest

from imaginebuild.errors import UsageError
from imaginebuild.retry import RetryPolicy, parse_retry_after, policy_with_backoff


def test_retry_after_zero_means_now_and_fractions_are_kept() -> None:
    assert parse_retry_after("0", now=0.0) == 0.0
    assert parse_retry_after("0.5", now=0.0) == 0.5
    assert parse_retry_after("0.0", now=0.0) == 0.0  # the float form of "now"
    assert parse_retry_after("-1", now=0.0) is None


def test_a_short_retry_after_is_waited_as_given_above_no_backoff() -> None:
    policy = RetryPolicy(max_retries=3, base_delay=0.0, max_delay=0.0, jitter=0.0)
    assert policy.delay(0, 0.5, random.Random(1)) == 0.5
    assert policy.delay(0, -3.0, random.Random(1)) == 0.0  # a negative hint waits nothing


def test_zero_delays_and_full_jitter_are_valid() -> None:
    RetryPolicy(max_retries=0, base_delay=0.0, max_delay=0.0, jitter=1.0)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"max_retries": -1}, "retry counts and delays must not be negative"),
        ({"base_delay": -0.1}, "retry counts and delays must not be negative"),
        ({"max_delay": -0.1}, "retry counts and delays must not be negative"),
        ({"jitter": 1.5}, "jitter is a fraction between 0 and 1"),
        ({"jitter": -0.1}, "jitter is a fraction between 0 and 1"),
    ],
)
def test_a_bad_policy_is_refused_saying_why(fields: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=f"^{message}$"):
        RetryPolicy(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize("setting", ["fast", "1", "nan,1", "1,inf", "1,2,3", "-1,2"])
def test_a_bad_backoff_setting_names_the_setting_and_the_way_back(setting: str) -> None:
    with pytest.raises(UsageError) as caught:
        policy_with_backoff(2, setting, "IMAGINEBUILD_XAI_BACKOFF")
    assert caught.value.message == (
        f"IMAGINEBUILD_XAI_BACKOFF={setting!r}: expected BASE,MAX seconds (e.g. 0.005,0.02)"
    )
    assert caught.value.hint == "unset IMAGINEBUILD_XAI_BACKOFF for the default backoff"


def test_a_good_backoff_setting_is_used_as_given() -> None:
    policy = policy_with_backoff(4, " 0.005,0.02 ", "X")
    assert (policy.max_retries, policy.base_delay, policy.max_delay) == (4, 0.005, 0.02)
    assert policy_with_backoff(4, " ", "X") == RetryPolicy(max_retries=4)
