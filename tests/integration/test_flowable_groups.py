"""AllowFailure, task-level errors and finally on flowables, allowWarning, in
embedded mode (test_flowable_groups_distributed.py runs them on real workers)."""

from __future__ import annotations

from typing import Any

import pytest

from harrier.common.state import State
from tests.integration.modes import Runner

FAIL = "type: io.kestra.plugin.scripts.shell.Commands, commands: ['exit 1']"
OK = "type: io.kestra.plugin.core.log.Log, message: ok"


@pytest.fixture
def run(embedded: Any) -> Runner:
    return Runner("embedded", runtime=embedded)


def states(execution: Any) -> dict[str, State]:
    return {r.task_id: r.state.current for r in execution.task_runs}


def test_allow_failure_group_ends_warning_and_the_flow_goes_on(run: Runner):
    done = run(f"""
id: allow-failure
namespace: test
tasks:
  - id: group
    type: io.kestra.plugin.core.flow.AllowFailure
    tasks:
      - {{id: ko, {FAIL}}}
      - {{id: silenced, {OK}}}
    errors:
      - {{id: handle, {OK}}}
  - {{id: last, {OK}}}
""")
    assert done.state.current == State.WARNING
    found = states(done)
    assert found["ko"] == State.FAILED
    assert "silenced" not in found  # the group stops at its failure
    assert found["handle"] == State.SUCCESS  # its errors tasks ran
    assert found["group"] == State.WARNING
    assert found["last"] == State.SUCCESS


def test_errors_of_a_flowable_run_on_its_failure_and_it_stays_failed(run: Runner):
    done = run(f"""
id: flowable-errors
namespace: test
tasks:
  - id: seq
    type: io.kestra.plugin.core.flow.Sequential
    tasks:
      - {{id: ko, {FAIL}}}
    errors:
      - id: handle
        type: io.kestra.plugin.core.debug.Return
        format: "{{{{ task.id }}}} after {{{{ parent.taskrun.id is defined }}}}"
  - {{id: never, {OK}}}
errors:
  - {{id: flow-errors, {OK}}}
""")
    assert done.state.current == State.FAILED
    found = states(done)
    assert found["seq"] == State.FAILED and found["handle"] == State.SUCCESS
    assert found["flow-errors"] == State.SUCCESS
    assert "never" not in found
    handle = next(r for r in done.task_runs if r.task_id == "handle")
    seq = next(r for r in done.task_runs if r.task_id == "seq")
    assert handle.parent_task_run_id == seq.id and handle.outputs["value"] == "handle after true"


def test_finally_of_a_flowable_runs_after_success_and_after_failure(run: Runner):
    done = run(f"""
id: flowable-finally
namespace: test
tasks:
  - id: good
    type: io.kestra.plugin.core.flow.Parallel
    tasks:
      - {{id: g1, {OK}}}
    finally:
      - {{id: cleanup-good, {OK}}}
  - id: bad
    type: io.kestra.plugin.core.flow.Sequential
    allowFailure: true
    tasks:
      - {{id: b1, {FAIL}}}
    errors:
      - {{id: on-error, {OK}}}
    finally:
      - {{id: cleanup-bad, {OK}}}
  - id: broken-finally
    type: io.kestra.plugin.core.flow.Sequential
    tasks:
      - {{id: f1, {OK}}}
    finally:
      - {{id: cleanup-fails, {FAIL}}}
""")
    found = states(done)
    assert found["good"] == State.SUCCESS and found["cleanup-good"] == State.SUCCESS
    assert found["on-error"] == State.SUCCESS and found["cleanup-bad"] == State.SUCCESS
    assert found["bad"] == State.WARNING  # failed, then allowFailure
    # finally ran after errors
    runs = {r.task_id: r for r in done.task_runs}
    assert runs["cleanup-bad"].state.start_date >= runs["on-error"].state.end_date
    assert found["broken-finally"] == State.FAILED  # a failed finally task fails it
    assert done.state.current == State.FAILED


def test_allow_warning_turns_a_warning_into_success(run: Runner):
    done = run(f"""
id: allow-warning
namespace: test
tasks:
  - {{id: tolerated, allowFailure: true, allowWarning: true, {FAIL}}}
  - {{id: warned, allowFailure: true, {FAIL}}}
  - id: group
    type: io.kestra.plugin.core.flow.AllowFailure
    allowWarning: true
    tasks:
      - {{id: inner, {FAIL}}}
""")
    found = states(done)
    assert found["tolerated"] == State.SUCCESS
    assert found["warned"] == State.WARNING
    assert found["group"] == State.SUCCESS
    assert done.state.current == State.WARNING  # `warned` still warns
