"""Trigger conditions (`conditions:` on Schedule, Webhook and Flow triggers),
one class per Kestra condition type, registered under Kestra's names and aliases.
The Execution* conditions look at the upstream execution of a Flow trigger.

A trigger fires only when all its conditions are true (and its `when`, Kestra
2.0's expression). Semantics follow kestra-io/kestra's
core/src/main/java/io/kestra/plugin/core/condition/*.java: `date` defaults to
`{{ trigger.date }}`, DateTimeBetween is inclusive, TimeBetween exclusive and
compares times with their offsets, Not is true when none of its conditions is,
Or when any is, Expression reads truth as TruthUtils."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from harrier.common.errors import TemplateError
from harrier.common.templating import render
from harrier.common.truth import is_true

DayOfWeek = Literal["MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY", "SUNDAY"]
_DAYS = ("MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY", "SUNDAY")
_TRIGGER_DATE = "{{ trigger.date }}"
_PREFIXES = ("io.kestra.plugin.core.condition.", "io.kestra.core.models.conditions.types.")


class ConditionError(ValueError):
    """A condition could not be evaluated (a template or a date that does not parse)."""


@dataclass
class ConditionContext:
    """What a condition sees: the trigger's variables (`trigger`, `flow`) and the
    secrets, to render its properties."""

    variables: Mapping[str, Any]
    secrets: Mapping[str, str] | None = None
    # A Flow trigger's upstream execution that ended: namespace, flowId, state,
    # labels, outputs (what the Execution* conditions test).
    execution: Mapping[str, Any] | None = None

    def upstream(self, condition: str) -> Mapping[str, Any]:
        if self.execution is None:
            raise ConditionError(f"{condition} tests the execution that ended: it only "
                                 "applies on a Flow trigger")
        return self.execution

    def render(self, value: Any, field: str) -> Any:
        try:
            return render(value, self.variables, field=field, secrets=self.secrets)
        except TemplateError as exc:
            raise ConditionError(str(exc)) from exc


class Condition(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="forbid", populate_by_name=True,
                              frozen=True)
    type_names: ClassVar[tuple[str, ...]] = ()
    # About an upstream execution: only on Flow triggers.
    execution_only: ClassVar[bool] = False

    type: str

    def test(self, ctx: ConditionContext) -> bool:
        raise NotImplementedError


CONDITION_TYPES: dict[str, type[Condition]] = {}


def condition_type(name: str) -> Callable[[type[Condition]], type[Condition]]:
    """Register a condition under Kestra's name (`io.kestra.plugin.core.condition.X`)
    and its aliases (`...XCondition`, `io.kestra.core.models.conditions.types.XCondition`)."""

    def decorate(cls: type[Condition]) -> type[Condition]:
        names = (f"{_PREFIXES[0]}{name}", f"{_PREFIXES[0]}{name}Condition",
                 f"{_PREFIXES[1]}{name}Condition")
        for alias in names:
            CONDITION_TYPES[alias] = cls
        cls.type_names = names
        return cls

    return decorate


# Kestra's conditions Harrier does not implement (Flow-trigger windows and
# retries): rejected with a pointer to what to use instead.
NOT_SUPPORTED = {
    "HasRetryAttempt": "not supported",
    "Multiple": "not supported; use the Flow trigger's `preconditions`",
    "ExecutionsWindow": "not supported; use the Flow trigger's `preconditions`",
    "Flow": "not supported; use ExecutionFlow",
    "FlowNamespace": "not supported; use ExecutionNamespace",
}


def parse_conditions(raw: Any, *, on_execution: bool = False) -> list[Condition]:
    """Validate a `conditions:` list into condition objects (ValueError says why).
    `on_execution`: the trigger is a Flow trigger, so Execution* conditions apply."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise ValueError("expected a list of conditions")
    found = []
    for index, item in enumerate(raw):
        if isinstance(item, Condition):
            found.append(item)
            continue
        if not isinstance(item, dict) or "type" not in item:
            raise ValueError(f"conditions[{index}]: expected a condition with a type")
        name = str(item["type"])
        cls = CONDITION_TYPES.get(name)
        if cls is None:
            short = name.rsplit(".", 1)[-1].removesuffix("Condition")
            if short in NOT_SUPPORTED:
                raise ValueError(f"conditions[{index}]: {name} is {NOT_SUPPORTED[short]}")
            known = sorted({c.type_names[0] for c in CONDITION_TYPES.values()})
            raise ValueError(f"conditions[{index}]: unknown condition type {name!r}; "
                             f"supported: {', '.join(known)}")
        if cls.execution_only and not on_execution:
            raise ValueError(f"conditions[{index}]: {name} tests the execution that ended: "
                             "it only applies on a Flow trigger "
                             "(io.kestra.plugin.core.trigger.Flow)")
        try:
            # `date: null` is as if absent, as Jackson reads Kestra's flows.
            found.append(cls.model_validate({k: v for k, v in item.items() if v is not None}))
        except ValueError as exc:
            raise ValueError(f"conditions[{index}] ({name.rsplit('.', 1)[-1]}): "
                             f"{_first_error(exc)}") from None
    return found


def _first_error(exc: ValueError) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        first = errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        message = str(first["msg"]).removeprefix("Value error, ")
        return f"{where}: {message}" if where else message
    return str(exc)


def all_true(conditions: list[Condition], when: str | bool | None,
             ctx: ConditionContext) -> bool:
    """Every condition holds, and `when` renders true (ConditionError if one
    cannot be evaluated)."""
    if when is not None and not is_true(ctx.render(when, "when")):
        return False
    return all(condition.test(ctx) for condition in conditions)


# -- dates as Kestra's DateUtils reads them
def _datetime(text: Any, field: str) -> datetime:
    if isinstance(text, datetime):
        return text
    value = str(text).strip()
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ConditionError(f"{field}: {value!r} is not an ISO-8601 date-time") from None
    return parsed


def _local_date(text: Any, field: str) -> date:
    value = str(text).strip()
    try:
        return date.fromisoformat(value)
    except ValueError:
        return _datetime(value, field).date()  # the date where the date-time is


def _offset_time(text: str, field: str) -> time:
    try:
        return time.fromisoformat(str(text).strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{field}: {text!r} is not an ISO-8601 time with offset "
                         "(e.g. 16:00:00+02:00)") from None


def _instant_of_day(value: time) -> timedelta:
    # OffsetTime.isAfter/isBefore compare the instant on a common date.
    offset = value.utcoffset() or timedelta(0)
    return timedelta(hours=value.hour, minutes=value.minute, seconds=value.second,
                     microseconds=value.microsecond) - offset


def _templated(value: str) -> bool:
    return "{{" in value or "{%" in value


@condition_type("Expression")
class ExpressionCondition(Condition):
    expression: str | bool

    def test(self, ctx: ConditionContext) -> bool:
        return is_true(ctx.render(self.expression, "expression"))


@condition_type("DayWeek")
class DayWeekCondition(Condition):
    date: str = _TRIGGER_DATE
    day_of_week: DayOfWeek = Field(alias="dayOfWeek")

    def test(self, ctx: ConditionContext) -> bool:
        day = _local_date(ctx.render(self.date, "date"), "date")
        return _DAYS[day.weekday()] == self.day_of_week


@condition_type("DayWeekInMonth")
class DayWeekInMonthCondition(Condition):
    date: str = _TRIGGER_DATE
    day_of_week: DayOfWeek = Field(alias="dayOfWeek")
    day_in_month: Literal["FIRST", "SECOND", "THIRD", "FOURTH", "LAST"] = Field(
        alias="dayInMonth")

    def test(self, ctx: ConditionContext) -> bool:
        day = _local_date(ctx.render(self.date, "date"), "date")
        if _DAYS[day.weekday()] != self.day_of_week:
            return False
        week = (day.day - 1) // 7  # 0: the first such weekday of the month
        if self.day_in_month == "LAST":
            return (day + timedelta(days=7)).month != day.month
        return week == ("FIRST", "SECOND", "THIRD", "FOURTH").index(self.day_in_month)


@condition_type("Weekend")
class WeekendCondition(Condition):
    date: str = _TRIGGER_DATE

    def test(self, ctx: ConditionContext) -> bool:
        return _local_date(ctx.render(self.date, "date"), "date").weekday() >= 5


@condition_type("DateTimeBetween")
class DateTimeBetweenCondition(Condition):
    date: str = _TRIGGER_DATE
    after: str | None = None
    before: str | None = None

    @field_validator("after", "before")
    @classmethod
    def _zoned(cls, value: str | None) -> str | None:
        if value is not None and not _templated(value):
            parsed = _datetime(value, "date-time")
            if parsed.tzinfo is None:
                raise ValueError(f"{value!r} needs a zone (e.g. 2025-01-01T00:00:00Z)")
        return value

    def test(self, ctx: ConditionContext) -> bool:
        if self.after is None and self.before is None:
            raise ConditionError("DateTimeBetween needs `after`, `before` or both")
        current = _datetime(ctx.render(self.date, "date"), "date")
        if self.after is not None and current < _datetime(ctx.render(self.after, "after"),
                                                          "after"):
            return False
        return self.before is None or current <= _datetime(ctx.render(self.before, "before"),
                                                           "before")


@condition_type("TimeBetween")
class TimeBetweenCondition(Condition):
    date: str = _TRIGGER_DATE
    after: str | None = None
    before: str | None = None

    @field_validator("after", "before")
    @classmethod
    def _time(cls, value: str | None) -> str | None:
        if value is not None and not _templated(value):
            _offset_time(value, "time")
        return value

    def test(self, ctx: ConditionContext) -> bool:
        if self.after is None and self.before is None:
            raise ConditionError("TimeBetween needs `after`, `before` or both")
        moment = _datetime(ctx.render(self.date, "date"), "date")
        current = _instant_of_day(moment.timetz())
        if self.after is not None:
            after = _offset_time(ctx.render(self.after, "after"), "after")
            if not current > _instant_of_day(after):
                return False
        if self.before is not None:
            before = _offset_time(ctx.render(self.before, "before"), "before")
            if not current < _instant_of_day(before):
                return False
        return True


class _Nested(Condition):
    conditions: list[Condition] = Field(min_length=1)

    @field_validator("conditions", mode="before")
    @classmethod
    def _nested(cls, value: Any) -> list[Condition]:
        return parse_conditions(value)


@condition_type("Not")
class NotCondition(_Nested):
    def test(self, ctx: ConditionContext) -> bool:
        return not any(condition.test(ctx) for condition in self.conditions)


@condition_type("Or")
class OrCondition(_Nested):
    def test(self, ctx: ConditionContext) -> bool:
        return any(condition.test(ctx) for condition in self.conditions)


# -- about the upstream execution of a Flow trigger (Kestra's
# plugin/core/condition/Execution*Condition.java)
StateName = Literal["SUCCESS", "WARNING", "FAILED", "KILLED", "CANCELLED", "SKIPPED",
                    "RETRIED", "PAUSED", "RUNNING", "CREATED", "QUEUED", "KILLING",
                    "RESTARTED", "RETRYING", "RESUBMITTED", "BREAKPOINT"]


@condition_type("ExecutionStatus")
class ExecutionStatusCondition(Condition):
    execution_only = True
    in_: list[StateName] | None = Field(None, alias="in")
    not_in: list[StateName] | None = Field(None, alias="notIn")

    def test(self, ctx: ConditionContext) -> bool:
        state = str(ctx.upstream("ExecutionStatus")["state"])
        if self.in_ is not None and state not in self.in_:
            return False
        return self.not_in is None or state not in self.not_in


@condition_type("ExecutionFlow")
class ExecutionFlowCondition(Condition):
    execution_only = True
    namespace: str
    flow_id: str = Field(alias="flowId")

    def test(self, ctx: ConditionContext) -> bool:
        execution = ctx.upstream("ExecutionFlow")
        return (execution["namespace"] == self.namespace
                and execution["flowId"] == self.flow_id)


@condition_type("ExecutionNamespace")
class ExecutionNamespaceCondition(Condition):
    execution_only = True
    namespace: str
    comparison: Literal["EQUALS", "PREFIX", "SUFFIX"] | None = None
    prefix: bool = False  # Kestra's older form of comparison: PREFIX

    def test(self, ctx: ConditionContext) -> bool:
        namespace = str(ctx.upstream("ExecutionNamespace")["namespace"])
        comparison = self.comparison or ("PREFIX" if self.prefix else "EQUALS")
        if comparison == "PREFIX":
            return namespace.startswith(self.namespace)
        if comparison == "SUFFIX":
            return namespace.endswith(self.namespace)
        return namespace == self.namespace


@condition_type("ExecutionLabels")
class ExecutionLabelsCondition(Condition):
    execution_only = True
    labels: dict[str, Any] | list[dict[str, Any]] = Field(min_length=1)

    def test(self, ctx: ConditionContext) -> bool:
        have = ctx.upstream("ExecutionLabels").get("labels") or {}
        wanted = self.labels if isinstance(self.labels, dict) else {
            str(item.get("key")): item.get("value") for item in self.labels}
        return all(str(have.get(key)) == str(value) and key in have
                   for key, value in wanted.items())


@condition_type("ExecutionOutputs")
class ExecutionOutputsCondition(Condition):
    """True when `expression` renders true; false when the execution has no outputs."""

    execution_only = True
    expression: str

    def test(self, ctx: ConditionContext) -> bool:
        if not ctx.upstream("ExecutionOutputs").get("outputs"):
            return False
        return is_true(ctx.render(self.expression, "expression"))
