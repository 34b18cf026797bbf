"""Trigger declarations of a flow (Schedule, Webhook): validated data only;
the scheduler evaluates them."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from harrier.common.cron import parse_cron
from harrier.common.durations import parse_duration
from harrier.common.state import State
from harrier.common.task import TASK_ID_PATTERN
from harrier.common.trigger_conditions import (
    Condition,
    ConditionContext,
    all_true,
    parse_conditions,
)


class Trigger(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="forbid", populate_by_name=True, frozen=True)
    type_names: ClassVar[tuple[str, ...]] = ()

    id: str = Field(pattern=TASK_ID_PATTERN)
    type: str
    description: str | None = None
    disabled: bool = False
    inputs: dict[str, Any] = Field(default_factory=dict)
    # All must hold for the trigger to fire (common/trigger_conditions.py).
    conditions: list[Condition] = Field(default_factory=list)
    # Kestra 2.0: an expression that must render true for the trigger to fire.
    when: str | bool | None = None
    # Execution states after which the trigger disables itself.
    stop_after: list[State] = Field(default_factory=list, alias="stopAfter")

    @field_validator("conditions", mode="before")
    @classmethod
    def _conditions(cls, value: Any) -> list[Condition]:
        return parse_conditions(value)

    @field_validator("stop_after")
    @classmethod
    def _terminal(cls, value: list[State]) -> list[State]:
        for state in value:
            if not state.terminated:
                raise ValueError(f"{state.value} is not a state an execution ends in "
                                 "(e.g. FAILED, SUCCESS, WARNING, KILLED)")
        return value

    def should_fire(self, variables: dict[str, Any],
                    secrets: Mapping[str, str] | None = None) -> bool:
        """Its conditions and `when` hold for these trigger variables
        (ConditionError when one cannot be evaluated)."""
        return all_true(self.conditions, self.when, ConditionContext(variables, secrets))


class Backfill(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="forbid", populate_by_name=True, frozen=True)
    start: datetime
    end: datetime | None = None
    inputs: dict[str, Any] = Field(default_factory=dict)
    labels: dict[str, str] | list[dict[str, str]] = Field(default_factory=dict)


class ScheduleTrigger(Trigger):
    type_names = ("io.kestra.plugin.core.trigger.Schedule",
                  "io.kestra.core.models.triggers.types.Schedule")

    # Before `cron`: the cron check reads it.
    with_seconds: bool = Field(False, alias="withSeconds")
    cron: str
    timezone: str = "UTC"
    # Kestra's default is ALL: a scheduler that was down fires every missed tick.
    recover_missed_schedules: Literal["ALL", "LAST", "NONE"] = Field(
        "ALL", alias="recoverMissedSchedules")
    backfill: Backfill | None = None
    # A tick fired later than this after its time is skipped (Kestra's lateMaximumDelay).
    late_maximum_delay: timedelta | None = Field(None, alias="lateMaximumDelay")

    @field_validator("late_maximum_delay", mode="before")
    @classmethod
    def _delay(cls, value: object) -> object:
        return parse_duration(value) if isinstance(value, str) else value

    # Two field checks, not one model check: a bad cron and a bad timezone are
    # both reported, each at its own line.
    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, value: str, info: ValidationInfo) -> str:
        parse_cron(value, with_seconds=bool(info.data.get("with_seconds")))
        return value

    @field_validator("timezone")
    @classmethod
    def _valid_timezone(cls, value: str) -> str:
        parse_cron("* * * * *", timezone=value)
        return value


class WebhookTrigger(Trigger):
    type_names = ("io.kestra.plugin.core.trigger.Webhook",
                  "io.kestra.core.models.triggers.types.Webhook")

    key: str = Field(min_length=1)

    @field_validator("key")
    @classmethod
    def _url_safe(cls, value: str) -> str:
        if is_template(value):
            return value  # rendered (secrets, flow.id) when a request is matched
        if "/" in value or any(c.isspace() for c in value):
            raise ValueError("the webhook key must not contain '/' or spaces")
        return value


def is_template(text: str) -> bool:
    return "{{" in text or "{%" in text


TRIGGER_TYPES: dict[str, type[Trigger]] = {
    name: cls for cls in (ScheduleTrigger, WebhookTrigger) for name in cls.type_names
}
