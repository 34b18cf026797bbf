"""Kestra's task retry policies (constant, exponential, random) and the
countdown before the next attempt, which Celery's retry then honours."""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from harrier.common.durations import parse_duration


def _duration(value: object) -> timedelta:
    if isinstance(value, timedelta):
        return value
    if not isinstance(value, str):
        raise ValueError(f"expected an ISO-8601 duration (e.g. PT5M), got {value!r}")
    return parse_duration(value)


class _RetryBase(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="forbid", populate_by_name=True)

    # Kestra renamed maxAttempt to maxAttempts in 0.24 and still accepts both;
    # the seed flows use the old name. Both count attempts, the first included.
    max_attempts: int | None = Field(None, alias="maxAttempts", ge=1)
    max_attempt: int | None = Field(None, alias="maxAttempt", ge=1, exclude=True)
    max_duration: timedelta | None = Field(None, alias="maxDuration")
    warning_on_retry: bool = Field(False, alias="warningOnRetry")
    behavior: Literal["RETRY_FAILED_TASK", "CREATE_NEW_EXECUTION"] = "RETRY_FAILED_TASK"

    _parse_durations = field_validator("max_duration", mode="before")(
        lambda cls, v: None if v is None else _duration(v))

    @model_validator(mode="after")
    def _merge_attempt_alias(self) -> _RetryBase:
        if self.max_attempts is None and self.max_attempt is not None:
            self.max_attempts = self.max_attempt
        if self.max_attempts is None and self.max_duration is None:
            raise ValueError("a retry needs maxAttempts or maxDuration, or it would never stop")
        return self

    def delay(self, attempt: int) -> timedelta:
        """Wait before attempt number `attempt + 1` (attempt counts from 1)."""
        raise NotImplementedError

    def next_countdown(self, attempts_made: int, elapsed: timedelta) -> float | None:
        """Seconds to wait before the next attempt, or None when retries are exhausted."""
        if self.max_attempts is not None and attempts_made >= self.max_attempts:
            return None
        wait = self.delay(attempts_made)
        if self.max_duration is not None and elapsed + wait > self.max_duration:
            return None
        return wait.total_seconds()


class ConstantRetry(_RetryBase):
    type: Literal["constant"]
    interval: timedelta

    _parse = field_validator("interval", mode="before")(lambda cls, v: _duration(v))

    def delay(self, attempt: int) -> timedelta:
        return self.interval


class ExponentialRetry(_RetryBase):
    type: Literal["exponential"]
    interval: timedelta
    max_interval: timedelta = Field(alias="maxInterval")
    delay_factor: float = Field(2.0, alias="delayFactor", gt=1)

    _parse = field_validator("interval", "max_interval", mode="before")(
        lambda cls, v: _duration(v))

    def delay(self, attempt: int) -> timedelta:
        wait = self.interval * (self.delay_factor ** (attempt - 1))
        return min(wait, self.max_interval)


class RandomRetry(_RetryBase):
    type: Literal["random"]
    min_interval: timedelta = Field(alias="minInterval")
    max_interval: timedelta = Field(alias="maxInterval")

    _parse = field_validator("min_interval", "max_interval", mode="before")(
        lambda cls, v: _duration(v))

    @model_validator(mode="after")
    def _ordered(self) -> RandomRetry:
        if self.min_interval > self.max_interval:
            raise ValueError("minInterval must not be larger than maxInterval")
        return self

    def delay(self, attempt: int) -> timedelta:
        low, high = self.min_interval.total_seconds(), self.max_interval.total_seconds()
        return timedelta(seconds=random.uniform(low, high))


RetryPolicy = Annotated[ConstantRetry | ExponentialRetry | RandomRetry,
                        Field(discriminator="type")]
