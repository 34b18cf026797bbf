"""io.kestra.plugin.core.flow.Dag in embedded mode (test_dag_distributed.py
runs the flow tests again on real worker processes): dependsOn order,
independent branches at the same time, a failure skipping only what depends
on it, validation of unknown ids and cycles, a Dag inside a loop."""

from __future__ import annotations

from typing import Any

import pytest

from harrier.common.errors import FlowValidationError
from harrier.common.flow import parse_flow
from harrier.common.state import State
from tests.integration.modes import Runner

SHELL = "type: io.kestra.plugin.scripts.shell.Commands"


@pytest.fixture
def run(embedded: Any) -> Runner:
    return Runner("embedded", runtime=embedded)


def test_tasks_start_when_what_they_depend_on_has_ended(run: Runner, tmp_path):
    log = tmp_path / "events.log"
    done = run(f"""
id: dag
namespace: test
tasks:
  - id: dag
    type: io.kestra.plugin.core.flow.Dag
    tasks:
      - task: {{id: extract, {SHELL}, commands: ["echo extract >> {log}"]}}
      - task:
          id: left
          {SHELL}
          commands: ["echo left-start >> {log}; sleep 0.5; echo left-end >> {log}"]
        dependsOn: [extract]
      - task:
          id: right
          {SHELL}
          commands: ["echo right-start >> {log}; sleep 0.5; echo right-end >> {log}"]
        dependsOn: [extract]
      - task:
          id: load
          type: io.kestra.plugin.core.debug.Return
          format: "after {{{{ outputs.left.exitCode }}}}"
        dependsOn: [left, right]
  - {{id: after, type: io.kestra.plugin.core.log.Log, message: done}}
""")
    assert done.state.current == State.SUCCESS, done.error
    events = log.read_text().split()
    assert events[0] == "extract"
    # The two branches overlap: both started before either ended.
    assert set(events[1:3]) == {"left-start", "right-start"}
    dag = next(r for r in done.task_runs if r.task_id == "dag")
    load = next(r for r in done.task_runs if r.task_id == "load")
    assert load.outputs["value"] == "after 0"
    assert load.parent_task_run_id == dag.id
    assert load.state.start_date >= max(r.state.end_date for r in done.task_runs
                                        if r.task_id in ("left", "right"))


def test_a_failed_task_skips_only_what_depends_on_it(run: Runner):
    done = run(f"""
id: dag-failure
namespace: test
tasks:
  - id: dag
    type: io.kestra.plugin.core.flow.Dag
    tasks:
      - task: {{id: root, type: io.kestra.plugin.core.log.Log, message: root}}
      - task: {{id: broken, {SHELL}, commands: ["exit 1"]}}
        dependsOn: [root]
      - task: {{id: fine, type: io.kestra.plugin.core.log.Log, message: fine}}
        dependsOn: [root]
      - task: {{id: needs-broken, type: io.kestra.plugin.core.log.Log, message: x}}
        dependsOn: [broken, fine]
      - task: {{id: transitively, type: io.kestra.plugin.core.log.Log, message: x}}
        dependsOn: [needs-broken]
      - task: {{id: needs-fine, type: io.kestra.plugin.core.log.Log, message: x}}
        dependsOn: [fine]
    errors:
      - {{id: alert, type: io.kestra.plugin.core.log.Log, message: alert}}
  - {{id: never, type: io.kestra.plugin.core.log.Log, message: x}}
""")
    assert done.state.current == State.FAILED
    found = {r.task_id: r.state.current for r in done.task_runs}
    assert found["broken"] == State.FAILED
    assert found["fine"] == State.SUCCESS and found["needs-fine"] == State.SUCCESS
    assert "needs-broken" not in found and "transitively" not in found
    assert found["dag"] == State.FAILED and found["alert"] == State.SUCCESS
    assert "never" not in found


def test_a_dag_inside_a_loop_runs_once_per_value(run: Runner):
    done = run("""
id: dag-loop
namespace: test
tasks:
  - id: each
    type: io.kestra.plugin.core.flow.ForEach
    values: [x, y]
    concurrencyLimit: 0
    tasks:
      - id: dag
        type: io.kestra.plugin.core.flow.Dag
        tasks:
          - task:
              id: a
              type: io.kestra.plugin.core.debug.Return
              format: "{{ parent.taskrun.value }}"
          - task:
              id: b
              type: io.kestra.plugin.core.debug.Return
              format: "{{ outputs.a[parents[0].taskrun.value].value }}!"
            dependsOn: [a]
""")
    assert done.state.current == State.SUCCESS, done.error
    assert sorted(r.outputs["value"] for r in done.task_runs if r.task_id == "b") == ["x!", "y!"]


@pytest.mark.parametrize(("tasks", "expected", "line"), [
    ("""      - task: {id: a, type: io.kestra.plugin.core.log.Log, message: a}
        dependsOn: [zzz]""", "task 'a' depends on 'zzz', which is not a task of this Dag", 5),
    ("""      - task: {id: a, type: io.kestra.plugin.core.log.Log, message: a}
        dependsOn: [b]
      - task: {id: b, type: io.kestra.plugin.core.log.Log, message: b}
        dependsOn: [a]""", "dependency cycle: a -> b -> a (task 'a' and task 'b'", 5),
])
def test_unknown_dependencies_and_cycles_are_validation_errors(tasks, expected, line):
    with pytest.raises(FlowValidationError) as caught:
        parse_flow(f"""
id: bad-dag
namespace: test
tasks:
  - id: dag
    type: io.kestra.plugin.core.flow.Dag
    tasks:
{tasks}
""", "dag.yaml")
    message = str(caught.value)
    assert expected in message and f"dag.yaml:{line}:" in message, message


def test_restart_runs_the_failed_task_then_what_it_had_skipped(run: Runner, tmp_path):
    fixed = tmp_path / "fixed"
    started = run.start(f"""
id: dag-restart
namespace: test
tasks:
  - id: dag
    type: io.kestra.plugin.core.flow.Dag
    tasks:
      - task: {{id: root, {SHELL}, commands: ["echo root >> {tmp_path}/ran.log"]}}
      - task: {{id: flaky, {SHELL}, commands: ["test -e {fixed}"]}}
        dependsOn: [root]
      - task: {{id: other, {SHELL}, commands: ["echo other >> {tmp_path}/ran.log"]}}
        dependsOn: [root]
      - task: {{id: downstream, {SHELL}, commands: ["echo downstream >> {tmp_path}/ran.log"]}}
        dependsOn: [flaky, other]
""")
    failed = run.wait(started.id)
    assert failed.state.current == State.FAILED
    assert "downstream" not in {r.task_id for r in failed.task_runs}
    fixed.touch()
    done = run.restart(started.id)
    assert done.state.current == State.SUCCESS, [(r.task_id, r.state.current)
                                                 for r in done.task_runs]
    assert (tmp_path / "ran.log").read_text().split() == ["root", "other", "downstream"]
    flaky = next(r for r in done.task_runs if r.task_id == "flaky")
    assert len(flaky.attempts) == 2
