"""Trigger declarations of a flow (Schedule, Webhook, Flow): validated data
only; the scheduler evaluates them."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, time, timedelta
from typing import Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

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
        return parse_conditions(value, on_execution=cls.on_execution)

    # Execution* conditions apply (the Flow trigger).
    on_execution: ClassVar[bool] = False

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


class _Plain(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="forbid", populate_by_name=True, frozen=True)


class UpstreamFlow(_Plain):
    """One of `preconditions.flows`: an execution of this flow ended in one of `states`."""

    namespace: str = Field(min_length=1)
    flow_id: str | None = Field(None, alias="flowId")
    states: list[State] | None = None
    labels: dict[str, Any] | None = None

    def matches(self, execution: Mapping[str, Any]) -> bool:
        if execution["namespace"] != self.namespace:
            return False
        if self.flow_id is not None and execution["flowId"] != self.flow_id:
            return False
        if self.states is not None and execution["state"] not in {s.value for s in self.states}:
            return False
        have = execution.get("labels") or {}
        return all(key in have and str(have[key]) == str(value)
                   for key, value in (self.labels or {}).items())


FilterField = Literal["FLOW_ID", "NAMESPACE", "STATE", "EXPRESSION"]
FilterType = Literal["EQUAL_TO", "NOT_EQUAL_TO", "IN", "NOT_IN", "IS_TRUE", "IS_FALSE",
                     "IS_NULL", "IS_NOT_NULL", "STARTS_WITH", "ENDS_WITH", "REGEX", "CONTAINS"]
_NEEDS_VALUE = ("EQUAL_TO", "NOT_EQUAL_TO", "STARTS_WITH", "ENDS_WITH", "REGEX", "CONTAINS")
_MAX_FILTER_TEXT = 1000  # a REGEX runs on every ended execution: keep it small


class Filter(_Plain):
    field: FilterField
    type: FilterType
    value: str | None = Field(None, max_length=_MAX_FILTER_TEXT)
    values: list[str] | None = None

    @model_validator(mode="after")
    def _operands(self) -> Filter:
        if self.type in _NEEDS_VALUE and self.value is None:
            raise ValueError(f"a {self.type} filter needs `value`")
        if self.type in ("IN", "NOT_IN") and self.values is None:
            raise ValueError(f"a {self.type} filter needs `values`")
        if self.field == "EXPRESSION" and self.value is None:
            raise ValueError("an EXPRESSION filter needs `value` (the expression)")
        if self.type == "REGEX" and self.value is not None:
            try:
                re.compile(self.value)
            except re.error as exc:
                raise ValueError(f"`value` is not a regular expression: {exc}") from None
        return self


class ExecutionFilter(_Plain):
    """One of `preconditions.where`: filters on the execution that ended."""

    id: str = Field(min_length=1)
    operand: Literal["AND", "OR"] = "AND"
    filters: list[Filter] = Field(min_length=1)


class TimeWindow(_Plain):
    """Kestra's preconditions window. DURATION_WINDOW: fixed windows of `window`
    (default a day) starting at midnight UTC plus `windowAdvance`; SLIDING_WINDOW:
    the last `window` before now; DAILY_TIME_DEADLINE: from midnight to
    `deadline` each day; DAILY_TIME_WINDOW: from `startTime` to `endTime` each day
    (times of day in UTC)."""

    type: Literal["DURATION_WINDOW", "SLIDING_WINDOW", "DAILY_TIME_DEADLINE",
                  "DAILY_TIME_WINDOW"] = "DURATION_WINDOW"
    window: timedelta | None = None
    window_advance: timedelta | None = Field(None, alias="windowAdvance")
    deadline: time | None = None
    start_time: time | None = Field(None, alias="startTime")
    end_time: time | None = Field(None, alias="endTime")

    @field_validator("window", "window_advance", mode="before")
    @classmethod
    def _duration(cls, value: object) -> object:
        return parse_duration(value) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _fields_of_type(self) -> TimeWindow:
        allowed = {"DURATION_WINDOW": {"window", "window_advance"},
                   "SLIDING_WINDOW": {"window"},
                   "DAILY_TIME_DEADLINE": {"deadline"},
                   "DAILY_TIME_WINDOW": {"start_time", "end_time"}}[self.type]
        for name in ("window", "window_advance", "deadline", "start_time", "end_time"):
            if getattr(self, name) is not None and name not in allowed:
                alias = type(self).model_fields[name].alias or name
                raise ValueError(f"{alias} does not apply to a {self.type} window")
        if self.window is not None and self.window <= timedelta(0):
            raise ValueError("window must be a positive duration")
        if self.type == "DAILY_TIME_DEADLINE" and self.deadline is None:
            raise ValueError("a DAILY_TIME_DEADLINE window needs `deadline` (e.g. 09:00:00)")
        if self.type == "DAILY_TIME_WINDOW" and (self.start_time is None or
                                                 self.end_time is None):
            raise ValueError("a DAILY_TIME_WINDOW needs `startTime` and `endTime`")
        return self

    def bounds(self, now: datetime) -> tuple[datetime, datetime] | None:
        """The window `now` falls in (start, end); None: outside every window (an
        end then counts for nothing)."""
        day = datetime(now.year, now.month, now.day, tzinfo=UTC)
        if self.type == "SLIDING_WINDOW":
            return now - (self.window or timedelta(days=1)), now
        if self.type == "DAILY_TIME_DEADLINE":
            assert self.deadline is not None
            end = datetime.combine(day.date(), self.deadline, UTC)
            return (day, end) if now <= end else None
        if self.type == "DAILY_TIME_WINDOW":
            assert self.start_time is not None and self.end_time is not None
            start = datetime.combine(day.date(), self.start_time, UTC)
            end = datetime.combine(day.date(), self.end_time, UTC)
            return (start, end) if start <= now <= end else None
        size = self.window or timedelta(days=1)
        origin = day + (self.window_advance or timedelta(0))
        if origin > now:
            origin -= timedelta(days=1)
        start = origin + size * ((now - origin) // size)
        return start, start + size


class Preconditions(_Plain):
    """Kestra 2.0's preconditions: every entry of `flows` and `where` must be met by
    executions that ended within one time window before the trigger fires."""

    id: str | None = Field(None, pattern=r"^[a-zA-Z0-9][a-zA-Z0-9_-]*$")
    flows: list[UpstreamFlow] = Field(default_factory=list)
    where: list[ExecutionFilter] = Field(default_factory=list)
    reset_on_success: bool = Field(True, alias="resetOnSuccess")
    time_window: TimeWindow = Field(TimeWindow.model_validate({}), alias="timeWindow")

    @model_validator(mode="after")
    def _something(self) -> Preconditions:
        if not self.flows and not self.where:
            raise ValueError("preconditions need `flows`, `where` or both")
        return self

    def condition_ids(self) -> list[str]:
        return [f"flow_{i}" for i in range(len(self.flows))] + [
            f"where_{i}_{f.id}" for i, f in enumerate(self.where)]


class FlowTrigger(Trigger):
    """Starts its flow when an execution of another flow ends (scheduler/flow_triggers.py)."""

    type_names = ("io.kestra.plugin.core.trigger.Flow",
                  "io.kestra.core.models.triggers.types.Flow")
    on_execution = True

    # Kestra's default: every state an execution ends in.
    states: list[State] = Field(default_factory=lambda: [s for s in State if s.terminated])
    preconditions: Preconditions | None = None

    @field_validator("states")
    @classmethod
    def _ends(cls, value: list[State]) -> list[State]:
        for state in value:
            if not state.terminated:
                raise ValueError(f"{state.value} is not a state an execution ends in; a Flow "
                                 "trigger reacts to ends (e.g. SUCCESS, WARNING, FAILED, KILLED)")
        return value

    @model_validator(mode="after")
    def _guarded(self) -> FlowTrigger:
        if self.stop_after:
            raise ValueError("stopAfter on Flow triggers is not supported yet")
        # Kestra 0.22: without one, every end of every flow would start this flow.
        if not self.conditions and self.preconditions is None:
            raise ValueError("a Flow trigger needs `conditions` or `preconditions` (to react "
                             "to any end, add an Expression condition `expression: \"true\"`)")
        return self


TRIGGER_TYPES: dict[str, type[Trigger]] = {
    name: cls for cls in (ScheduleTrigger, WebhookTrigger, FlowTrigger)
    for name in cls.type_names
}
