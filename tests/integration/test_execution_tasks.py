"""OutputValues, execution.Labels, execution.Assert and pluginDefaults in embedded mode
(test_execution_tasks_distributed.py runs them on real Redis and workers)."""

from __future__ import annotations

from typing import Any

import pytest

from harrier.common.state import State
from harrier.common.store import ExecutionQuery
from tests.integration.modes import Runner


@pytest.fixture
def run(embedded: Any) -> Runner:
    return Runner("embedded", runtime=embedded)


def test_output_values_are_read_by_later_tasks(run: Runner):
    done = run("""
id: output-values
namespace: test
tasks:
  - id: out
    type: io.kestra.plugin.core.output.OutputValues
    values:
      date: "{{ execution.startDate | date('yyyy') }}"
      nested: {n: 1}
  - id: use
    type: io.kestra.plugin.core.debug.Return
    format: "{{ outputs.out.values.nested.n }} {{ outputs.out.values.date | length }}"
""")
    assert done.state.current == State.SUCCESS, done.error
    assert next(r for r in done.task_runs if r.task_id == "use").outputs["value"] == "1 4"


def test_labels_set_while_running_show_on_the_execution_and_in_search(run: Runner):
    done = run("""
id: labelled
namespace: test
labels: {team: data}
tasks:
  - id: label
    type: io.kestra.plugin.core.execution.Labels
    labels:
      - {key: partition, value: "p-{{ 1 + 1 }}"}
      - {key: team, value: platform}
  - id: read
    type: io.kestra.plugin.core.debug.Return
    format: "{{ labels.partition }}"
""")
    assert done.state.current == State.SUCCESS, done.error
    api = {item["key"]: item["value"] for item in done.to_json()["labels"]}
    assert api == {"team": "platform", "partition": "p-2",
                   "system.correlationId": done.id}  # Kestra's system label
    assert next(r for r in done.task_runs if r.task_id == "read").outputs["value"] == "p-2"
    found, _ = run.store.search_executions(ExecutionQuery(labels=(("partition", "p-2"),)))
    assert done.id in [e.id for e in found]
    stale, _ = run.store.search_executions(ExecutionQuery(labels=(("team", "data"),)))
    assert done.id not in [e.id for e in stale]


def test_assert_fails_with_every_false_condition_logged(run: Runner):
    done = run("""
id: asserting
namespace: test
tasks:
  - id: check
    type: io.kestra.plugin.core.execution.Assert
    conditions:
      - "{{ 1 + 1 == 2 }}"
      - "{{ 1 + 1 == 3 }}"
      - "{{ 'x' == 'y' }}"
    errorMessage: "bad arithmetic"
""")
    assert done.state.current == State.FAILED
    check = next(r for r in done.task_runs if r.task_id == "check")
    assert check.error == "2 assertion(s) failed: bad arithmetic"
    messages = [e.message for e in run.store.read_logs(done.id)]
    assert "Assertion `{{ 1 + 1 == 3 }}` failed!" in messages
    assert "Assertion `{{ 'x' == 'y' }}` failed!" in messages
    passing = run("""
id: asserting-ok
namespace: test
tasks:
  - id: check
    type: io.kestra.plugin.core.execution.Assert
    conditions: ["{{ 2 > 1 }}"]
""")
    assert passing.state.current == State.SUCCESS


def test_plugin_defaults_reach_the_tasks_that_run(run: Runner):
    done = run("""
id: with-defaults
namespace: test
pluginDefaults:
  - type: io.kestra.plugin.core.debug.Return
    values:
      format: "default {{ task.id }}"
  - type: io.kestra.plugin.scripts
    forced: true
    values:
      env: {A: "1"}
tasks:
  - {id: r1, type: io.kestra.plugin.core.debug.Return}
  - {id: r2, type: io.kestra.plugin.core.debug.Return, format: mine}
  - id: sh
    type: io.kestra.plugin.scripts.shell.Commands
    env: {B: "2", A: "0"}
    commands: ['echo "::{\\"outputs\\":{\\"ab\\":\\"$A$B\\"}}::"']
""")
    assert done.state.current == State.SUCCESS, done.error
    outputs = {r.task_id: r.outputs for r in done.task_runs}
    assert outputs["r1"]["value"] == "default r1" and outputs["r2"]["value"] == "mine"
    assert outputs["sh"]["vars"] == {"ab": "12"}
