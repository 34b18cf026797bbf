"""ForEachItem (io.kestra.plugin.core.flow.ForEachItem) in embedded mode and on
a real Redis with real worker processes: a file of the internal storage is
split into batches of `batch.rows` lines, one child execution per batch reads
its own batch (a file of the parent's execution, from another namespace),
the parent counts the children by state and merges their outputs, and a
failed child fails the parent unless transmitFailed is false."""

from __future__ import annotations

import json

import pytest

from harrier.common.errors import FlowValidationError
from harrier.common.execution import Execution
from harrier.common.flow import parse_flow
from harrier.common.kv import new_entry
from harrier.common.state import State
from harrier.common.store import ExecutionQuery
from harrier.scheduler.control import kill_execution, restart_execution
from tests.fixtures.modes import Harrier
from tests.integration.embedded import stored_bytes, task_run, wait_for

CHILD = """
id: batch_child
namespace: team.sub
inputs:
  - id: data
    type: FILE
  - id: fail
    type: BOOLEAN
    defaults: false
tasks:
  - id: lines
    type: io.kestra.plugin.core.debug.Return
    format: "{{ read(inputs.data) | trim }}"
  - id: maybe_fail
    type: io.kestra.plugin.core.execution.Fail
    runIf: "{{ inputs.fail }}"
outputs:
  - id: lines
    type: STRING
    value: "{{ outputs.lines.value }}"
"""

PARENT = """
id: split_{name}
namespace: team
tasks:
  - id: make
    type: io.kestra.plugin.scripts.shell.Commands
    taskRunner:
      type: io.kestra.plugin.core.runner.Process
    outputFiles: [items.txt]
    commands:
      - seq 1 10 > items.txt
  - id: each
    type: io.kestra.plugin.core.flow.ForEachItem
    items: "{{{{ outputs.make.outputFiles['items.txt'] }}}}"
    batch:
      rows: 3
    namespace: team.sub
    flowId: batch_child
    transmitFailed: {transmit}
    labels:
      batch: "{{{{ taskrun.iteration }}}}"
    inputs:
      data: "{{{{ taskrun.items }}}}"
      fail: "{{{{ taskrun.iteration == {fail_at} }}}}"
  - id: after
    type: io.kestra.plugin.core.debug.Return
    format: "{{{{ outputs.each.numberOfBatches }}}}"
"""


def _deploy(harrier: Harrier, text: str) -> None:
    flow = parse_flow(text, "child.yaml")
    harrier.store.put_flow(flow.namespace, flow.id, flow.source)


def _children(harrier: Harrier, parent: Execution) -> list[Execution]:
    found, _ = harrier.store.search_executions(ExecutionQuery(
        namespace="team.sub", flow_id="batch_child", limit=100))
    mine = [harrier.store.get_execution(e.id) for e in found
            if (e.trigger or {}).get("variables", {}).get("executionId") == parent.id]
    return sorted(mine, key=lambda e: e.trigger["variables"]["taskRunIteration"])  # type: ignore[index]


def test_ten_lines_by_three_make_four_children_each_with_its_batch(harrier: Harrier) -> None:
    _deploy(harrier, CHILD)
    done = harrier.run(PARENT.format(name="ok", transmit="true", fail_at=-1), timeout=180)
    assert done.state.current == State.SUCCESS, [(r.task_id, r.error) for r in done.task_runs]
    each = task_run(done, "each")
    assert each.outputs["numberOfBatches"] == 4
    assert each.outputs["iterations"] == {"SUCCESS": 4}
    assert task_run(done, "after").outputs["value"] == "4"
    children = _children(harrier, done)
    assert [task_run(c, "lines").outputs["value"] for c in children] == \
        ["1\n2\n3", "4\n5\n6", "7\n8\n9", "10"]
    assert [c.labels["batch"] for c in children] == ["0", "1", "2", "3"]
    assert all(c.trigger["variables"]["taskId"] == "each" for c in children)  # type: ignore[index]
    # The children's outputs, merged in batch order, one JSON line each.
    merged = stored_bytes(harrier.settings, each.outputs["subflowOutputs"]).decode()
    assert [json.loads(line)["lines"] for line in merged.splitlines()] == \
        ["1\n2\n3", "4\n5\n6", "7\n8\n9", "10"]


def test_a_failed_child_fails_the_parent_unless_transmit_failed_is_false(
        harrier: Harrier) -> None:
    _deploy(harrier, CHILD)
    failed = harrier.run(PARENT.format(name="fail", transmit="true", fail_at=2), timeout=180)
    assert failed.state.current == State.FAILED
    each = task_run(failed, "each")
    assert each.state.current == State.FAILED
    assert each.outputs["iterations"] == {"SUCCESS": 3, "FAILED": 1}
    assert "1 of 4 subflow executions ended FAILED" in (each.error or "")
    assert "after" not in {r.task_id for r in failed.task_runs}

    tolerant = harrier.run(PARENT.format(name="tolerant", transmit="false", fail_at=2),
                           timeout=180)
    assert tolerant.state.current == State.SUCCESS
    assert task_run(tolerant, "each").outputs["iterations"] == {"SUCCESS": 3, "FAILED": 1}
    assert task_run(tolerant, "after").state.current == State.SUCCESS


def test_items_that_are_not_a_storage_uri_fail_the_task(harrier: Harrier) -> None:
    _deploy(harrier, CHILD)
    done = harrier.run("""
id: not_a_uri
namespace: team
tasks:
  - id: each
    type: io.kestra.plugin.core.flow.ForEachItem
    items: /etc/passwd
    namespace: team.sub
    flowId: batch_child
""")
    assert done.state.current == State.FAILED
    assert "not an internal storage (kestra://) URI" in (task_run(done, "each").error or "")


@pytest.mark.parametrize(("batch", "expected"), [
    # lines until a batch reaches 4 bytes ("9\n10\n": the line that reaches it stays)
    ("bytes: 4", ["1\n2", "3\n4", "5\n6", "7\n8", "9\n10"]),
    ("bytes: 1KB", ["1\n2\n3\n4\n5\n6\n7\n8\n9\n10"]),
    # lines dealt out in turn; empty partitions are dropped
    ("partitions: 3", ["1\n4\n7\n10", "2\n5\n8", "3\n6\n9"]),
    ("partitions: 12", [str(n) for n in range(1, 11)]),
])
def test_batches_by_bytes_or_partitions(harrier: Harrier, batch: str,
                                        expected: list[str]) -> None:
    _deploy(harrier, CHILD)
    name = batch.replace(": ", "_")
    done = harrier.run(PARENT.format(name=name, transmit="true", fail_at=-1)
                       .replace("rows: 3", batch), timeout=180)
    assert done.state.current == State.SUCCESS, [(r.task_id, r.error) for r in done.task_runs]
    assert task_run(done, "each").outputs["numberOfBatches"] == len(expected)
    assert [task_run(c, "lines").outputs["value"] for c in _children(harrier, done)] == expected


@pytest.mark.parametrize(("batch", "message"), [
    ("{separator: ';'}", "batch.separator is not supported yet"),
    ("{regexPattern: '(a)'}", "batch.regexPattern is not supported yet"),
    ("{rows: 2, bytes: 10MB}", "give one of rows, bytes or partitions, not rows and bytes"),
    ("{bytes: ten}", "'ten' is not a size like 10MB"),
    ("{partitions: 0}", "batch.partitions: Input should be greater than or equal to 1"),
])
def test_bad_batch_settings_are_named_at_validation(batch: str, message: str) -> None:
    with pytest.raises(FlowValidationError) as caught:
        parse_flow(f"""
id: f
namespace: n
tasks:
  - id: each
    type: io.kestra.plugin.core.flow.ForEachItem
    items: "{{{{ inputs.file }}}}"
    batch: {batch}
    namespace: n
    flowId: g
""", "f.yaml")
    assert message in str(caught.value)


SLOW_CHILD = """
id: slow_batch
namespace: team.sub
inputs:
  - id: data
    type: FILE
tasks:
  - id: nap
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT60S
"""

SLOW_PARENT = """
id: slow_split_{name}
namespace: team
tasks:
  - id: make
    type: io.kestra.plugin.scripts.shell.Commands
    taskRunner:
      type: io.kestra.plugin.core.runner.Process
    outputFiles: [items.txt]
    commands:
      - seq 1 4 > items.txt
  - id: each
    type: io.kestra.plugin.core.flow.ForEachItem
    items: "{{{{ outputs.make.outputFiles['items.txt'] }}}}"
    batch:
      rows: 2
    namespace: team.sub
    flowId: slow_batch
    wait: {wait}
    inputs:
      data: "{{{{ taskrun.items }}}}"
"""


def _children_of(harrier: Harrier, parent_id: str, flow_id: str) -> list[Execution]:
    found, _ = harrier.store.search_executions(ExecutionQuery(
        namespace="team.sub", flow_id=flow_id, limit=100))
    return [e for e in found
            if (e.trigger or {}).get("variables", {}).get("executionId") == parent_id]


def test_wait_false_ends_once_the_children_are_started(harrier: Harrier) -> None:
    _deploy(harrier, SLOW_CHILD)
    done = harrier.run(SLOW_PARENT.format(name="nowait", wait="false"), timeout=180)
    assert done.state.current == State.SUCCESS
    assert task_run(done, "each").outputs["numberOfBatches"] == 2
    children = _children_of(harrier, done.id, "slow_batch")
    assert len(children) == 2
    for child in children:
        assert not harrier.store.execution_state(child.id).terminated
        kill_execution(harrier.store, child.id, app=harrier.app, settings=harrier.settings)
        assert harrier.store.wait_terminal(child.id, 60).state.current == State.KILLED


def test_killing_the_parent_kills_its_children(harrier: Harrier) -> None:
    _deploy(harrier, SLOW_CHILD)
    parent = harrier.start(SLOW_PARENT.format(name="killed", wait="true"))
    wait_for(lambda: len(_children_of(harrier, parent.id, "slow_batch")) == 2
             and all(harrier.store.execution_state(c.id) == State.RUNNING
                     for c in _children_of(harrier, parent.id, "slow_batch")), timeout=120)
    kill_execution(harrier.store, parent.id, app=harrier.app, settings=harrier.settings)
    assert harrier.store.wait_terminal(parent.id, 60).state.current == State.KILLED
    for child in _children_of(harrier, parent.id, "slow_batch"):
        assert harrier.store.wait_terminal(child.id, 60).state.current == State.KILLED


def test_restarting_a_failed_parent_starts_new_children(harrier: Harrier) -> None:
    _deploy(harrier, """
id: flaky_batch
namespace: team.sub
inputs:
  - id: data
    type: FILE
tasks:
  - id: maybe_fail
    type: io.kestra.plugin.core.execution.Fail
    condition: "{{ kv('fail_batch') }}"
""")
    harrier.store.kv_put(new_entry("team.sub", "fail_batch", True))
    failed = harrier.run(SLOW_PARENT.replace("slow_batch", "flaky_batch")
                         .format(name="restart", wait="true"), timeout=180)
    assert failed.state.current == State.FAILED
    assert task_run(failed, "each").outputs["iterations"] == {"FAILED": 2}
    harrier.store.kv_put(new_entry("team.sub", "fail_batch", False))
    restart_execution(harrier.store, harrier.app, failed.id, settings=harrier.settings)
    done = wait_for(lambda: (e := harrier.store.get_execution(failed.id)).state.current
                    .terminated and e.state.current != State.FAILED and e, timeout=180)
    assert done.state.current == State.SUCCESS, [(r.task_id, r.error) for r in done.task_runs]
    # Counted afresh: the first attempt's failed children are not this run's.
    assert task_run(done, "each").outputs["iterations"] == {"SUCCESS": 2}
    assert len(_children_of(harrier, failed.id, "flaky_batch")) == 4
