"""Kestra 2.0's dialect beside 1.x's in one flow: `when` (runIf's new name) on
tasks and flowables, and the Loop task with `item.value`/`item.index` in every
nested task (test_kestra2_dialect_distributed.py runs the flow tests on real
workers)."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest

from harrier.common.dispatch import FlowRef, advance_message, publish
from harrier.common.errors import ExecutionNotFound, FlowValidationError
from harrier.common.execution import Execution
from harrier.common.flow import parse_flow
from harrier.common.state import State
from harrier.worker.engine import Engine
from harrier.worker.loop_runs import iteration_execution, iteration_id
from harrier.worker.runtime import Runtime
from tests.integration.embedded import wait_for
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


def iterations(run: Runner, parent: Execution, task_id: str = "loop") -> list[Execution]:
    """The executions a Loop's run started, one per iteration, in order."""
    loop = next(r for r in parent.task_runs if r.task_id == task_id)
    found = []
    for index in range(int(loop.outputs.get("iterationCount") or 0)):
        try:
            found.append(run.store.get_execution(iteration_id(loop.id, index)))
        except ExecutionNotFound:
            break
    return found


def test_loop_gives_item_to_every_nested_task_and_reads_its_own_iteration(run: Runner):
    done = run("""
id: loop2
namespace: test
inputs:
  - {id: who, type: STRING, defaults: spark}
tasks:
  - id: before
    type: io.kestra.plugin.core.debug.Return
    format: "pre-{{ inputs.who }}"
  - id: loop
    type: io.kestra.plugin.core.flow.Loop
    values: ["north", "south", {"k": 1}]
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
            format: "{{ item.value }} {{ outputs.first.value }} {{ outputs.before.value }}"
""")
    assert done.state.current == State.SUCCESS, done.error
    # Each iteration is an execution of its own: the parent holds only the loop's run.
    assert sorted(r.task_id for r in done.task_runs) == ["before", "loop"]
    children = iterations(run, done)
    assert [c.state.current for c in children] == [State.SUCCESS] * 3
    assert all(c.loop_run and c.loop_run["parentId"] == done.id for c in children)
    assert all(c.to_json()["kind"] == "LOOP" for c in children)
    assert children[1].to_json()["loopRun"] == {  # as the API shows it
        "parentId": done.id, "taskRunId": children[1].loop_run["taskRunId"],
        "taskId": "loop", "index": 1, "value": "south"}
    firsts = [next(r.outputs["value"] for r in c.task_runs if r.task_id == "first")
              for c in children]
    assert firsts == ['north-0', 'south-1', '{"k":1}-2']
    deeps = [r.outputs["value"] for c in children for r in c.task_runs if r.task_id == "deep"]
    # Outputs of a task outside the loop are read from the parent execution.
    assert deeps == ['south south-1 pre-spark', '{"k":1} {"k":1}-2 pre-spark']
    loop = next(r for r in done.task_runs if r.task_id == "loop")
    assert loop.outputs["iterationCount"] == 3
    assert loop.outputs["terminatedIterations"] == {"SUCCESS": 3}
    assert "outputs" not in loop.outputs  # none declared


def test_loop_declared_outputs_are_listed_per_iteration_after_the_loop(run: Runner):
    done = run("""
id: loop-outputs
namespace: test
tasks:
  - id: loop
    type: io.kestra.plugin.core.flow.Loop
    values: ["alpha", "beta", "gamma"]
    concurrencyLimit: 1
    fetchType: FETCH
    outputs:
      - id: label
        type: STRING
        value: "{{ outputs.process.value }}"
      - id: size
        type: INT
        value: "{{ item.value | length }}"
    tasks:
      - id: process
        type: io.kestra.plugin.core.debug.Return
        format: "processed {{ item.value }}"
  - id: read
    type: io.kestra.plugin.core.debug.Return
    format: >-
      {{ loopOutputs(outputs.loop.outputs, 'label') }}
      {{ outputs.loop.outputs[2].outputs.size }}
""")
    assert done.state.current == State.SUCCESS, done.error
    loop = next(r for r in done.task_runs if r.task_id == "loop")
    assert loop.outputs["outputs"] == [
        {"item": {"value": value, "iteration": index},
         "outputs": {"label": f"processed {value}", "size": len(value)}}
        for index, value in enumerate(["alpha", "beta", "gamma"])]
    read = next(r for r in done.task_runs if r.task_id == "read")
    assert read.outputs["value"] == '["processed alpha","processed beta","processed gamma"] 5'


def test_a_failed_iteration_fails_the_loop_and_starts_no_other(run: Runner):
    done = run("""
id: loop-fail
namespace: test
tasks:
  - id: loop
    type: io.kestra.plugin.core.flow.Loop
    values: [1, 2, 3]
    concurrencyLimit: 1
    tasks:
      - id: work
        type: io.kestra.plugin.core.execution.Fail
        when: "{{ item.value == '2' }}"
        errorMessage: "partition {{ item.value }} is corrupt"
    errors:
      - id: per-iteration-handler
        type: io.kestra.plugin.core.debug.Return
        format: "cleaning {{ item.value }}"
  - id: never
    type: io.kestra.plugin.core.log.Log
    message: not reached
""")
    assert done.state.current == State.FAILED
    loop = next(r for r in done.task_runs if r.task_id == "loop")
    assert loop.state.current == State.FAILED
    assert "iteration 1 ended in FAILED" in (loop.error or "")
    assert "never" not in {r.task_id for r in done.task_runs}
    children = iterations(run, done)
    assert [c.state.current for c in children] == [State.SUCCESS, State.FAILED]  # no third
    # The Loop's errors tasks ran inside the failed iteration, with its item.
    handler = [r.outputs["value"] for r in children[1].task_runs
               if r.task_id == "per-iteration-handler"]
    assert handler == ["cleaning 2"]
    assert "partition 2 is corrupt" in (children[1].error or "")
    logs = [e.message for e in run.store.read_logs(done.id)]
    assert any(f"in execution {children[1].id}: partition 2 is corrupt" in m for m in logs), logs


def test_without_transmit_failed_the_loop_runs_every_iteration_and_succeeds(run: Runner):
    done = run("""
id: loop-nofail
namespace: test
tasks:
  - id: loop
    type: io.kestra.plugin.core.flow.Loop
    values: [1, 2, 3]
    transmitFailed: false
    tasks:
      - id: work
        type: io.kestra.plugin.core.execution.Fail
        when: "{{ item.value == '2' }}"
""")
    assert done.state.current == State.SUCCESS, done.error
    loop = next(r for r in done.task_runs if r.task_id == "loop")
    assert loop.outputs["terminatedIterations"] == {"SUCCESS": 2, "FAILED": 1}
    assert sorted(c.state.current.value for c in iterations(run, done)) == [
        "FAILED", "SUCCESS", "SUCCESS"]


def test_concurrency_limit_bounds_the_iterations_running_at_once(run: Runner):
    done = run("""
id: loop-window
namespace: test
tasks:
  - id: one-at-a-time
    type: io.kestra.plugin.core.flow.Loop
    values: [a, b, c]
    concurrencyLimit: 1
    tasks:
      - {id: nap, type: io.kestra.plugin.core.flow.Sleep, duration: PT0.2S}
  - id: loop
    type: io.kestra.plugin.core.flow.Loop
    values: [a, b, c]
    tasks:
      - {id: nap2, type: io.kestra.plugin.core.flow.Sleep, duration: PT0.2S}
""")
    assert done.state.current == State.SUCCESS, done.error
    serial = iterations(run, done, "one-at-a-time")
    for earlier, later in itertools.pairwise(serial):
        assert earlier.state.end_date is not None
        assert later.created >= earlier.state.end_date  # started once the previous ended
    everything = iterations(run, done)  # default 0: all created at once
    first_end = min(c.state.end_date for c in everything if c.state.end_date)
    assert all(c.created <= first_end for c in everything)


def test_break_when_stops_starting_iterations(run: Runner):
    done = run("""
id: loop-break
namespace: test
tasks:
  - id: loop
    type: io.kestra.plugin.core.flow.Loop
    values: [1, 2, 3, 4]
    concurrencyLimit: 1
    breakWhen: "{{ iteration.outputs.found == 'yes' }}"
    outputs:
      - {id: found, type: STRING, value: "{{ item.value == '2' ? 'yes' : 'no' }}"}
    tasks:
      - {id: look, type: io.kestra.plugin.core.log.Log, message: "{{ item.value }}"}
""")
    assert done.state.current == State.SUCCESS, done.error
    assert len(iterations(run, done)) == 2


def test_nested_loops_see_the_outer_item_as_item_parent(run: Runner):
    done = run("""
id: loop-nested
namespace: test
tasks:
  - id: loop
    type: io.kestra.plugin.core.flow.Loop
    values: [2025, 2026]
    concurrencyLimit: 1
    tasks:
      - id: months
        type: io.kestra.plugin.core.flow.Loop
        values: [March, April]
        concurrencyLimit: 1
        outputs:
          - {id: name, type: STRING, value: "{{ outputs.name.value }}"}
        tasks:
          - id: name
            type: io.kestra.plugin.core.debug.Return
            format: "{{ item.parent.value }}_{{ item.value }}_{{ item.parents[0].index }}"
    outputs:
      - {id: names, type: JSON, value: "{{ loopOutputs(outputs.months.outputs, 'name') }}"}
""")
    assert done.state.current == State.SUCCESS, done.error
    loop = next(r for r in done.task_runs if r.task_id == "loop")
    assert [o["outputs"]["names"] for o in loop.outputs["outputs"]] == [
        ["2025_March_0", "2025_April_0"], ["2026_March_1", "2026_April_1"]]


def test_loop_over_a_map_gives_item_key_and_value(run: Runner):
    done = run("""
id: loop-map
namespace: test
tasks:
  - id: loop
    type: io.kestra.plugin.core.flow.Loop
    values: {eu: "Paris", us: "{{ 'New ' ~ 'York' }}"}
    outputs:
      - {id: shown, type: STRING, value: "{{ outputs.show.value }}"}
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
    outputs:
      - {id: expr, type: STRING, value: "{{ outputs.expr.value }}"}
    tasks:
      - id: expr
        type: io.kestra.plugin.core.debug.Return
        format: "{{ item.key }}{{ item.value }}"
""")
    assert done.state.current == State.SUCCESS, done.error
    loop = next(r for r in done.task_runs if r.task_id == "loop")
    assert [(o["item"], o["outputs"]["shown"]) for o in loop.outputs["outputs"]] == [
        ({"value": "Paris", "iteration": 0, "key": "eu"}, "0:eu=Paris"),
        ({"value": "New York", "iteration": 1, "key": "us"}, "1:us=New York")]
    other = next(r for r in done.task_runs if r.task_id == "from-expression")
    assert other.outputs["outputs"][0]["outputs"] == {"expr": "a1"}


def test_killing_the_parent_kills_the_running_iterations(run: Runner):
    started = run.start("""
id: loop-kill
namespace: test
tasks:
  - id: loop
    type: io.kestra.plugin.core.flow.Loop
    values: [a, b]
    tasks:
      - id: long
        type: io.kestra.plugin.scripts.shell.Commands
        commands: ["sleep 60"]
""")
    wait_for(lambda: (loop := run.store.find_task_run(started.id, "loop")) is not None
             and len([r for index in range(2)
                      for r in _runs(run, iteration_id(loop.id, index))
                      if r.task_id == "long" and r.state.current == State.RUNNING]) == 2,
             timeout=30)
    run.kill(started.id)
    killed = run.wait(started.id, timeout=30)
    assert killed.state.current == State.KILLED
    for child in iterations(run, killed):
        assert run.wait(child.id, timeout=30).state.current == State.KILLED


def _runs(run: Runner, execution_id: str) -> list[Any]:
    try:
        return run.store.task_runs(execution_id)
    except ExecutionNotFound:
        return []


def test_loop_rejects_what_it_cannot_do():
    for extra, expected in (("fetchType: SOMETIMES", "fetchType"),
                            ("retry: {type: constant, interval: PT1S, maxAttempts: 2}",
                             "retry is not supported on a Loop")):
        with pytest.raises(FlowValidationError) as caught:
            parse_flow(f"""id: bad
namespace: test
tasks:
  - id: loop
    type: io.kestra.plugin.core.flow.Loop
    values: [1]
    {extra}
    tasks:
      - {{id: t, type: io.kestra.plugin.core.log.Log, message: x}}
""", "bad.yaml")
        assert expected in str(caught.value)


def test_a_resumed_parent_waits_for_its_iterations_and_a_restart_runs_the_loop_again(
        run: Runner, tmp_path):
    gate = tmp_path / "go"
    started = run.start(f"""
id: loop-resume
namespace: test
tasks:
  - {{id: before, type: io.kestra.plugin.core.log.Log, message: hi}}
  - id: loop
    type: io.kestra.plugin.core.flow.Loop
    values: [1, 2]
    concurrencyLimit: 1
    tasks:
      - id: work
        type: io.kestra.plugin.scripts.shell.Commands
        commands:
          - "test -e {gate} || (sleep 1; exit 1)"
""")
    wait_for(lambda: (loop := run.store.find_task_run(started.id, "loop")) is not None
             and any(r.task_id == "work" for r in _runs(run, iteration_id(loop.id, 0))),
             timeout=30)
    # What a scheduler does for an execution that has not moved for a while
    # (scheduler/task_rescue.py): it must not run the Loop's tasks in the parent.
    engine = Engine.load(Runtime(run.settings, run.store, run.app), started.id)
    engine.resume(run.store.task_runs(started.id))
    engine.flush()
    failed = run.wait(started.id, timeout=30)
    assert failed.state.current == State.FAILED
    assert sorted(r.task_id for r in failed.task_runs) == ["before", "loop"]
    assert [c.state.current for c in iterations(run, failed)] == [State.FAILED]
    gate.touch()
    done = run.restart(started.id, timeout=30)
    assert done.state.current == State.SUCCESS, done.error
    loop = next(r for r in done.task_runs if r.task_id == "loop")
    assert loop.outputs["terminatedIterations"] == {"SUCCESS": 2}


def test_an_iteration_started_after_its_parent_ended_runs_nothing(run: Runner, tmp_path):
    # A kill of the parent can land while its Loop is still creating iterations:
    # one created after that must not run. Made here by creating it late.
    marks = tmp_path / "marks"
    text = f"""
id: loop-late
namespace: test
tasks:
  - id: loop
    type: io.kestra.plugin.core.flow.Loop
    values: [early]
    tasks:
      - id: mark
        type: io.kestra.plugin.scripts.shell.Commands
        commands: ["echo {{{{ item.value }}}} >> {marks}"]
"""
    done = run(text)
    assert done.state.current == State.SUCCESS, done.error
    loop_task = parse_flow(text, "late.yaml").index.task("loop")
    loop_run = next(r for r in done.task_runs if r.task_id == "loop")
    late = iteration_execution(run.store.execution_head(done.id), loop_task, loop_run, 1,
                               "late")
    run.store.create_execution(late)
    publish([advance_message(FlowRef(late.namespace, late.flow_id, late.flow_revision),
                             late.id, "start")])
    assert run.wait(late.id, timeout=30).state.current == State.KILLED
    assert marks.read_text().split() == ["early"]


def test_a_loop_over_a_storage_file_runs_a_line_each_and_stores_outputs(run: Runner):
    done = run("""
id: loop-file
namespace: test
tasks:
  - id: list
    type: io.kestra.plugin.scripts.shell.Commands
    outputFiles: [partitions.txt]
    commands:
      - |
        printf '%s\\n' 2026-11-30 '"2026-12-01"' '' '{"day": 2}' > partitions.txt
  - id: loop
    type: io.kestra.plugin.core.flow.Loop
    values: "{{ outputs.list.outputFiles['partitions.txt'] }}"
    concurrencyLimit: 1
    outputs:
      - {id: seen, type: STRING, value: "{{ outputs.each.value }}"}
    tasks:
      - {id: each, type: io.kestra.plugin.core.debug.Return, format: "p={{ item.value }}"}
  - id: inline
    type: io.kestra.plugin.core.flow.Loop
    values: "{{ outputs.list.outputFiles['partitions.txt'] }}"
    fetchType: FETCH
    outputs:
      - {id: index, type: INT, value: "{{ item.index }}"}
    tasks:
      - {id: nothing, type: io.kestra.plugin.core.log.Log, message: "{{ item.value }}"}
  - id: read-back
    type: io.kestra.plugin.core.debug.Return
    format: "{{ read(outputs.loop.outputs[2].outputs.uri) }}"
""")
    assert done.state.current == State.SUCCESS, done.error
    loop = next(r for r in done.task_runs if r.task_id == "loop")
    # One iteration per non-empty line; a line that is JSON is that value.
    assert [o["item"]["value"] for o in loop.outputs["outputs"]] == [
        "2026-11-30", "2026-12-01", '{"day":2}']
    # Over a file (fetchType AUTO), each iteration's outputs go to a file: its uri.
    assert all(set(o["outputs"]) == {"uri"} for o in loop.outputs["outputs"])
    assert "_storeOutputs" not in loop.outputs
    read_back = next(r for r in done.task_runs if r.task_id == "read-back")
    assert json.loads(read_back.outputs["value"]) == {"seen": 'p={"day":2}'}
    inline = next(r for r in done.task_runs if r.task_id == "inline")
    assert [o["outputs"] for o in inline.outputs["outputs"]] == [
        {"index": 0}, {"index": 1}, {"index": 2}]


def test_a_loop_refuses_a_file_it_may_not_read(run: Runner):
    done = run("""
id: loop-foreign
namespace: test
tasks:
  - id: loop
    type: io.kestra.plugin.core.flow.Loop
    values: "kestra:///other/team/flow/executions/x/tasks/t/r/list.txt"
    tasks:
      - {id: never, type: io.kestra.plugin.core.log.Log, message: x}
""")
    assert done.state.current == State.FAILED
    assert "not a file of this execution nor of namespace test" in (done.error or "")


def test_a_loop_refuses_a_file_line_too_long_and_bad_loop_outputs_arguments(run: Runner):
    done = run("""
id: loop-long-line
namespace: test
tasks:
  - id: list
    type: io.kestra.plugin.scripts.shell.Commands
    outputFiles: [huge.txt]
    commands: ["head -c 200000 /dev/zero | tr '\\\\0' x > huge.txt"]
  - id: loop
    type: io.kestra.plugin.core.flow.Loop
    values: "{{ outputs.list.outputFiles['huge.txt'] }}"
    tasks:
      - {id: never, type: io.kestra.plugin.core.log.Log, message: x}
""")
    assert done.state.current == State.FAILED
    assert "line 1 is longer than 64 KiB" in (done.error or "")
    assert [r.task_id for r in done.task_runs if r.task_id == "never"] == []
    bad = run("""
id: loop-outputs-bad
namespace: test
tasks:
  - {id: r, type: io.kestra.plugin.core.debug.Return, format: "{{ loopOutputs('x', 'y') }}"}
""")
    assert bad.state.current == State.FAILED
    assert "The 'loopOutputs' function expects 'outputs' to be a list." in (bad.error or "")
