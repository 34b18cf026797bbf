"""Retry policies as Kestra computes them: the wait before each attempt,
when retrying stops, and a retry that ends WARNING."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import TypeAdapter

from harrier.common.retry import RetryPolicy

POLICY = TypeAdapter(RetryPolicy)


def policy(**fields: object):
    return POLICY.validate_python(fields)


def test_exponential_waits_grow_by_delay_factor_up_to_max_interval() -> None:
    retry = policy(type="exponential", interval="PT1S", maxInterval="PT5S", delayFactor=3,
                   maxAttempts=10)
    assert [retry.delay(n) for n in (1, 2, 3)] == [
        timedelta(seconds=1), timedelta(seconds=3), timedelta(seconds=5)]


def test_random_waits_stay_between_min_and_max_interval() -> None:
    retry = policy(type="random", minInterval="PT1S", maxInterval="PT2S", maxAttempts=5)
    waits = {retry.delay(1) for _ in range(50)}
    assert all(timedelta(seconds=1) <= w <= timedelta(seconds=2) for w in waits)
    assert len(waits) > 1
    with pytest.raises(ValueError, match="minInterval must not be larger"):
        policy(type="random", minInterval="PT3S", maxInterval="PT2S", maxAttempts=5)


def test_max_duration_stops_retrying_when_the_next_wait_would_pass_it() -> None:
    retry = policy(type="constant", interval="PT10S", maxDuration="PT30S")
    assert retry.next_countdown(1, timedelta(seconds=5)) == 10
    assert retry.next_countdown(3, timedelta(seconds=25)) is None


def test_max_attempts_and_the_older_max_attempt_count_the_first_attempt() -> None:
    for name in ("maxAttempts", "maxAttempt"):
        retry = policy(type="constant", interval="PT1S", **{name: 2})
        assert retry.next_countdown(1, timedelta()) == 1
        assert retry.next_countdown(2, timedelta()) is None
    with pytest.raises(ValueError, match="would never stop"):
        policy(type="constant", interval="PT1S")
