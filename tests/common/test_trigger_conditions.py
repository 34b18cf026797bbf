"""Trigger conditions as Kestra evaluates them (core/.../plugin/core/condition):
each type against dates around its edges, and the validation messages."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harrier.common.trigger_conditions import (
    ConditionContext,
    ConditionError,
    parse_conditions,
)

C = "io.kestra.plugin.core.condition."


def holds(condition: dict, when: str, **variables: object) -> bool:
    [parsed] = parse_conditions([condition])
    return parsed.test(ConditionContext({"trigger": {"date": when}, **variables}))


@pytest.mark.parametrize(("when", "expected"), [
    ("2026-03-02T10:00:00Z", True),   # Monday
    ("2026-03-01T23:30:00-02:00", False),  # Monday in UTC, but Sunday where it is
    ("2026-03-01T10:00:00Z", False),
])
def test_day_week_reads_the_date_where_it_is(when: str, expected: bool) -> None:
    assert holds({"type": C + "DayWeek", "dayOfWeek": "MONDAY"}, when) is expected


@given(st.dates(min_value=date(2000, 1, 1), max_value=date(2100, 12, 31)),
       st.sampled_from(["FIRST", "SECOND", "THIRD", "FOURTH", "LAST"]))
def test_day_week_in_month_matches_the_calendar(day: date, which: str) -> None:
    name = day.strftime("%A").upper()
    same = [day.replace(day=d) for d in range(1, 32)
            if _valid(day, d) and day.replace(day=d).weekday() == day.weekday()]
    expected = day == (same[-1] if which == "LAST" else same[
        ["FIRST", "SECOND", "THIRD", "FOURTH"].index(which)])
    assert holds({"type": C + "DayWeekInMonth", "dayOfWeek": name, "dayInMonth": which},
                 f"{day.isoformat()}T12:00:00Z") is expected


def _valid(day: date, d: int) -> bool:
    try:
        day.replace(day=d)
    except ValueError:
        return False
    return True


def test_weekend_and_expression() -> None:
    assert holds({"type": C + "Weekend"}, "2026-03-01T00:00:00Z")
    assert not holds({"type": C + "Weekend"}, "2026-03-02T00:00:00Z")
    assert holds({"type": C + "Expression", "expression": "{{ flow.id == 'x' }}"},
                 "2026-03-02T00:00:00Z", flow={"id": "x"})
    assert not holds({"type": C + "Expression", "expression": "{{ 0 }}"}, "2026-03-02T00:00:00Z")


def test_date_time_between_is_inclusive_and_time_between_exclusive() -> None:
    between = {"type": C + "DateTimeBetween", "after": "2026-03-01T00:00:00Z",
               "before": "2026-03-02T00:00:00+01:00"}
    assert holds(between, "2026-03-01T00:00:00Z")
    assert holds(between, "2026-03-01T23:00:00Z")  # = the before bound
    assert not holds(between, "2026-03-01T23:00:01Z")
    times = {"type": C + "TimeBetween", "after": "16:00:00+02:00", "before": "20:00:00+02:00"}
    assert holds(times, "2026-03-01T15:00:00Z")  # 17:00 at +02:00
    assert not holds(times, "2026-03-01T14:00:00Z")  # = the after bound
    assert not holds(times, "2026-03-01T18:30:00Z")


def test_not_and_or_combine() -> None:
    monday = {"type": C + "DayWeek", "dayOfWeek": "MONDAY"}
    weekend = {"type": C + "Weekend"}
    assert holds({"type": C + "Not", "conditions": [monday, weekend]}, "2026-03-03T00:00:00Z")
    assert not holds({"type": C + "Not", "conditions": [monday, weekend]},
                     "2026-03-01T00:00:00Z")
    assert holds({"type": C + "Or", "conditions": [monday, weekend]}, "2026-03-01T00:00:00Z")
    assert not holds({"type": C + "Or", "conditions": [monday, weekend]},
                     "2026-03-04T00:00:00Z")


def test_old_type_names_are_aliases() -> None:
    [old] = parse_conditions([{"type": "io.kestra.core.models.conditions.types.WeekendCondition"}])
    [new] = parse_conditions([{"type": C + "Weekend"}])
    assert type(old) is type(new)


@pytest.mark.parametrize(("condition", "message"), [
    ({"type": C + "ExecutionStatus", "in": ["FAILED"]}, "only applies on a Flow trigger"),
    ({"type": C + "MultipleCondition"}, "use the Flow trigger's `preconditions`"),
    ({"type": C + "PublicHoliday"}, "unknown condition type"),
    ({"type": C + "DayWeek", "dayOfWeek": "Monday"}, "dayOfWeek"),
    ({"type": C + "TimeBetween", "after": "4pm"}, "not an ISO-8601 time"),
    ({"type": C + "DateTimeBetween", "after": "2026-01-01T00:00:00"}, "needs a zone"),
    ({"type": C + "Not", "conditions": []}, "at least 1"),
    ({"type": C + "Weekend", "dayOfWeek": "MONDAY"}, "dayOfWeek"),
])
def test_bad_conditions_are_rejected_with_a_reason(condition: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_conditions([condition])


def test_a_condition_that_cannot_be_evaluated_says_why() -> None:
    with pytest.raises(ConditionError, match="not an ISO-8601"):
        holds({"type": C + "Weekend", "date": "{{ 'soon' }}"}, "x")


def _upstream(namespace: str = "company.team", **extra: object) -> ConditionContext:
    execution = {"namespace": namespace, "flowId": "etl", "state": "FAILED",
                 "labels": {"env": "prod"}, "outputs": {}, **extra}
    return ConditionContext({"trigger": execution}, execution=execution)


def test_execution_namespace_compares_equals_prefix_or_suffix() -> None:
    def holds(**fields: object) -> bool:
        [condition] = parse_conditions([{"type": C + "ExecutionNamespace", **fields}],
                                       on_execution=True)
        return condition.test(_upstream())

    assert holds(namespace="company.team")
    assert not holds(namespace="company")
    assert holds(namespace="company", prefix=True)  # Kestra's older spelling of PREFIX
    assert holds(namespace="company", comparison="PREFIX")
    assert holds(namespace=".team", comparison="SUFFIX")
    assert not holds(namespace="company", comparison="SUFFIX")


def test_execution_conditions_outside_a_flow_trigger_say_so() -> None:
    [condition] = parse_conditions([{"type": C + "ExecutionStatus", "in": ["FAILED"]}],
                                   on_execution=True)
    assert condition.test(_upstream())
    with pytest.raises(ConditionError, match="only applies on a Flow trigger"):
        condition.test(ConditionContext({}))


def test_execution_labels_accept_kestra_list_form_and_outputs_need_outputs() -> None:
    [labels] = parse_conditions([{"type": C + "ExecutionLabels",
                                  "labels": [{"key": "env", "value": "prod"}]}],
                                on_execution=True)
    assert labels.test(_upstream())
    assert not labels.test(_upstream(labels={"env": "dev"}))
    [outputs] = parse_conditions([{"type": C + "ExecutionOutputs", "expression": "true"}],
                                 on_execution=True)
    assert not outputs.test(_upstream())  # no outputs: false, as Kestra
    assert outputs.test(_upstream(outputs={"rows": 3}))
