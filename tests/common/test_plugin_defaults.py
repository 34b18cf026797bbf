"""pluginDefaults and taskDefaults: applied per type and per type prefix,
`forced`, and checked like properties written on the task."""

from __future__ import annotations

import pytest

from harrier.common.errors import FlowValidationError
from harrier.common.flow import parse_flow


def flow(defaults: str, tasks: str, key: str = "pluginDefaults") -> str:
    return f"id: d\nnamespace: test\n{key}:\n{defaults}\ntasks:\n{tasks}\n"


def task(parsed, task_id: str):
    return parsed.task(task_id)


def test_a_default_fills_what_the_task_leaves_out_and_the_task_wins_otherwise():
    parsed = parse_flow(flow("""  - type: io.kestra.plugin.core.log.Log
    values: {level: WARN, message: from-defaults}""", """  - id: a
    type: io.kestra.plugin.core.log.Log
  - {id: b, type: io.kestra.plugin.core.log.Log, message: mine, level: ERROR}"""))
    assert task(parsed, "a").message == "from-defaults" and task(parsed, "a").level == "WARN"
    assert task(parsed, "b").message == "mine" and task(parsed, "b").level == "ERROR"


def test_forced_defaults_override_and_maps_merge_key_by_key():
    parsed = parse_flow(flow("""  - type: io.kestra.plugin.scripts
    forced: true
    values:
      env: {REGION: eu}
  - type: io.kestra.plugin.scripts.shell.Commands
    values:
      env: {LEVEL: low, REGION: us}""", """  - id: sh
    type: io.kestra.plugin.scripts.shell.Commands
    env: {REGION: local, OWN: x}
    commands: ["true"]"""))
    # forced wins over the task; the non-forced default only fills missing keys.
    assert task(parsed, "sh").env == {"REGION": "eu", "OWN": "x", "LEVEL": "low"}


def test_defaults_apply_to_old_type_names_nested_tasks_and_under_task_defaults():
    parsed = parse_flow(flow("""  - type: io.kestra.plugin.core.log.Log
    values: {message: hi}""", """  - id: seq
    type: io.kestra.plugin.core.flow.Sequential
    tasks:
      - {id: old, type: io.kestra.core.tasks.log.Log}""", key="taskDefaults"))
    assert task(parsed, "old").message == "hi"


@pytest.mark.parametrize(("defaults", "expected", "where"), [
    ("""  - type: io.kestra.plugin.nope.Thing
    values: {a: 1}""", "'io.kestra.plugin.nope.Thing' is not a task type nor the prefix", "4:5"),
    ("""  - type: io.kestra.plugin.core.log.Log
    values: {mesage: hi}""", "unknown property 'mesage' for io.kestra.plugin.core.log.Log",
     "5:14"),
    ("""  - type: io.kestra.plugin.core.flow.Parallel
    values: {concurrent: many}""", "concurrent: Input should be a valid integer", "5:14"),
    ("""  - type: io.kestra.plugin.core.log.Log
    values: {id: x}""", "a default cannot set 'id'", "5:14"),
])
def test_bad_defaults_are_validation_errors_at_their_line(defaults, expected, where):
    with pytest.raises(FlowValidationError) as caught:
        parse_flow(flow(defaults, "  - {id: a, type: io.kestra.plugin.core.log.Log, "
                                  "message: m}"), "d.yaml")
    assert expected in str(caught.value) and f"d.yaml:{where}" in str(caught.value), \
        str(caught.value)


def test_a_task_still_missing_a_required_property_is_reported_on_the_task():
    with pytest.raises(FlowValidationError) as caught:
        parse_flow(flow("""  - type: io.kestra.plugin.core.log.Log
    values: {level: WARN}""", "  - {id: a, type: io.kestra.plugin.core.log.Log}"),
                   "d.yaml")
    assert "missing required property 'message'" in str(caught.value)
