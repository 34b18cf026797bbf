"""Kestra 2.0's dialect beside 1.x's in one flow: `when` (runIf's new name) on
tasks and flowables, and the Loop task with `item.value`/`item.index` in every
nested task (test_kestra2_dialect_distributed.py runs the flow tests on real
workers)."""

from __future__ import annotations

from typing import Any

import pytest

from harrier.common.errors import FlowValidationError
from harrier.common.flow import parse_flow
from harrier.common.state import State
from tests.integration.modes import Runner


@pytest.fixture
def run(embedded: Any) -> Runner:
    return Runner("embedded", runtime=embedded)


def test_when_skips_tasks_and_flowables_like_run_if(run: Runner):
    done = run("""
id: when
namespace: test
tasks:
  - {id: skipped, type: io.kestra.plugin.core.log.Log, message: x, when: "{{ 1 == 2 }}"}
  - {id: ran, type: io.kestra.plugin.core.log.Log, message: x, when: "true"}
  - {id: old-style, type: io.kestra.plugin.core.log.Log, message: x, runIf: "false"}
  - id: group
    type: io.kestra.plugin.core.flow.Sequential
    when: "false"
    tasks:
      - {id: inside, type: io.kestra.plugin.core.log.Log, message: x}
  - {id: last, type: io.kestra.plugin.core.log.Log, message: x}
""")
    assert done.state.current == State.SUCCESS, done.error
    found = {r.task_id: r.state.current for r in done.task_runs}
    assert found == {"skipped": State.SKIPPED, "ran": State.SUCCESS,
                     "old-style": State.SKIPPED, "group": State.SKIPPED, "last": State.SUCCESS}


def test_run_if_and_when_together_is_a_validation_error():
    with pytest.raises(FlowValidationError) as caught:
        parse_flow("""id: both
namespace: test
tasks:
  - {id: t, type: io.kestra.plugin.core.log.Log, message: x, when: "true", runIf: "true"}
""", "both.yaml")
    assert "both.yaml:4:" in str(caught.value)
    assert "runIf and when are the same property" in str(caught.value)


def test_loop_gives_item_to_every_nested_task_and_reads_its_own_iteration(run: Runner):
    done = run("""
id: loop2
namespace: test
tasks:
  - id: loop
    type: io.kestra.plugin.core.flow.Loop
    values: ["north", "south", {"k": 1}]
    concurrencyLimit: 0
    tasks:
      - id: first
        type: io.kestra.plugin.core.debug.Return
        format: "{{ item.value }}-{{ item.index }}"
      - id: check
        type: io.kestra.plugin.core.flow.If
        condition: "{{ item.index > 0 }}"
        then:
          - id: deep
            type: io.kestra.plugin.core.debug.Return
            format: "{{ item.value }} {{ outputs.first.value }}"
""")
    assert done.state.current == State.SUCCESS, done.error
    firsts = sorted(r.outputs["value"] for r in done.task_runs if r.task_id == "first")
    assert firsts == ['north-0', 'south-1', '{"k":1}-2']
    deeps = sorted(r.outputs["value"] for r in done.task_runs if r.task_id == "deep")
    assert deeps == ['south south-1', '{"k":1} {"k":1}-2']


def test_loop_over_a_map_gives_item_key_and_value(run: Runner):
    done = run("""
id: loop-map
namespace: test
tasks:
  - id: loop
    type: io.kestra.plugin.core.flow.Loop
    values: {eu: "Paris", us: "{{ 'New ' ~ 'York' }}"}
    tasks:
      - id: seq
        type: io.kestra.plugin.core.flow.Sequential
        tasks:
          - id: show
            type: io.kestra.plugin.core.debug.Return
            format: "{{ item.index }}:{{ item.key }}={{ item.value }}"
  - id: from-expression
    type: io.kestra.plugin.core.flow.Loop
    values: '{{ {"a": 1} | json }}'
    tasks:
      - id: expr
        type: io.kestra.plugin.core.debug.Return
        format: "{{ item.key }}{{ item.value }}"
""")
    assert done.state.current == State.SUCCESS, done.error
    shown = sorted(r.outputs["value"] for r in done.task_runs if r.task_id == "show")
    assert shown == ["0:eu=Paris", "1:us=New York"]
    assert sorted(r.value for r in done.task_runs if r.task_id == "seq") == ["New York", "Paris"]
    assert [r.outputs["value"] for r in done.task_runs if r.task_id == "expr"] == ["a1"]
