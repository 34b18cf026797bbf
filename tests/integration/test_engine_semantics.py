"""Kestra's semantics of failures and retries as the engine runs them, each
test in embedded mode and across a real worker process (tests/fixtures/modes.py):
allowFailure on flowables, a failure stopping only
its own block, retries of Fail and of flowables, flow-level retries and
retries that create a new execution, Parallel's sliding window."""

from __future__ import annotations

import pytest

from harrier.common.state import State
from harrier.common.store import ExecutionQuery
from harrier.scheduler.control import NothingToRestart, restart_execution
from tests.integration.embedded import states, task_run, wait_for

FAIL = "type: io.kestra.plugin.scripts.shell.Commands, commands: ['exit 1']"
OK = "type: io.kestra.plugin.core.log.Log, message: ok"


@pytest.mark.parametrize("flowable", [
    "type: io.kestra.plugin.core.flow.Parallel\n    tasks:",
    "type: io.kestra.plugin.core.flow.Sequential\n    tasks:",
    "type: io.kestra.plugin.core.flow.If\n    condition: 'true'\n    then:",
    "type: io.kestra.plugin.core.flow.Switch\n    value: a\n    cases:\n      a:",
], ids=["Parallel", "Sequential", "If", "Switch"])
def test_allow_failure_on_a_flowable_makes_it_a_warning_and_the_flow_goes_on(
        harrier, flowable):
    execution = harrier.run(f"""
id: allowed-flowable
namespace: test
tasks:
  - id: group
    allowFailure: true
    {flowable}
      - {{id: broken, {FAIL}}}
      - {{id: skipped, {OK}}}
  - {{id: after, {OK}}}
""")
    assert execution.state.current == State.WARNING
    found = states(execution)
    assert found["broken"] == State.FAILED
    assert found["group"] == State.WARNING
    assert found["after"] == State.SUCCESS
    if "Parallel" not in flowable:
        assert "skipped" not in found  # a failure stops its own block


def test_a_failed_branch_stops_its_own_block_only(harrier):
    execution = harrier.run(f"""
id: scoped-failure
namespace: test
tasks:
  - id: fan
    type: io.kestra.plugin.core.flow.Parallel
    tasks:
      - {{id: fails, {FAIL}}}
      - id: other-branch
        type: io.kestra.plugin.core.flow.Sequential
        tasks:
          - id: slow
            type: io.kestra.plugin.scripts.shell.Commands
            commands: ["sleep 0.5"]
          - {{id: goes-on, {OK}}}
  - {{id: never, {OK}}}
""")
    assert execution.state.current == State.FAILED
    found = states(execution)
    # The other branch ran to its end; nothing after the Parallel started.
    assert found["goes-on"] == State.SUCCESS
    assert found["fan"] == State.FAILED
    assert "never" not in found


def test_fail_is_retried_like_any_task(harrier):
    execution = harrier.run("""
id: fail-retried
namespace: test
tasks:
  - id: stop
    type: io.kestra.plugin.core.execution.Fail
    errorMessage: "not yet"
    retry: {type: constant, interval: PT0.05S, maxAttempts: 3}
""")
    assert execution.state.current == State.FAILED
    run = task_run(execution, "stop")
    assert [a.state.current for a in run.attempts] == [State.FAILED] * 3
    assert run.error == "not yet"


def test_retry_on_a_flowable_runs_again_what_failed_under_it(harrier, tmp_path):
    marker = tmp_path / "tried"
    execution = harrier.run(f"""
id: flowable-retry
namespace: test
tasks:
  - id: fan
    type: io.kestra.plugin.core.flow.Parallel
    retry: {{type: constant, interval: PT0.1S, maxAttempts: 3}}
    tasks:
      - id: steady
        type: io.kestra.plugin.scripts.shell.Commands
        commands: ["echo once >> {tmp_path}/steady.log"]
      - id: flaky
        type: io.kestra.plugin.scripts.shell.Commands
        commands: ["test -e {marker} || {{ touch {marker}; exit 1; }}"]
  - {{id: after, {OK}}}
""")
    assert execution.state.current == State.SUCCESS, states(execution)
    flaky = task_run(execution, "flaky")
    assert [a.state.current for a in flaky.attempts] == [State.FAILED, State.SUCCESS]
    fan = task_run(execution, "fan")
    assert fan.state.current == State.SUCCESS
    assert State.RETRYING in [h.state for h in fan.state.histories]
    assert (tmp_path / "steady.log").read_text() == "once\n"  # what succeeded is kept


def test_retry_on_a_flowable_gives_up_after_max_attempts(harrier):
    execution = harrier.run(f"""
id: flowable-retry-spent
namespace: test
tasks:
  - id: group
    type: io.kestra.plugin.core.flow.Sequential
    retry: {{type: constant, interval: PT0.05S, maxAttempts: 2}}
    tasks:
      - {{id: broken, {FAIL}}}
""")
    assert execution.state.current == State.FAILED
    assert len(task_run(execution, "broken").attempts) == 2
    assert len(task_run(execution, "group").attempts) == 1  # one retry recorded


def test_flow_level_retry_runs_the_failed_tasks_again_before_errors(harrier, tmp_path):
    marker = tmp_path / "tried"
    execution = harrier.run(f"""
id: flow-retry
namespace: test
retry: {{type: constant, interval: PT0.1S, maxAttempts: 2}}
tasks:
  - id: first
    type: io.kestra.plugin.scripts.shell.Commands
    commands: ["echo once >> {tmp_path}/first.log"]
  - id: flaky
    type: io.kestra.plugin.scripts.shell.Commands
    commands: ["test -e {marker} || {{ touch {marker}; exit 1; }}"]
errors:
  - {{id: alert, {OK}}}
""")
    assert execution.state.current == State.SUCCESS, states(execution)
    assert [h.state for h in execution.state.histories].count(State.RETRYING) == 1
    assert len(task_run(execution, "flaky").attempts) == 2
    assert (tmp_path / "first.log").read_text() == "once\n"
    assert "alert" not in states(execution)


def test_flow_level_retry_spent_runs_the_errors_tasks_once(harrier):
    execution = harrier.run(f"""
id: flow-retry-spent
namespace: test
retry: {{type: constant, interval: PT0.05S, maxAttempts: 2}}
tasks:
  - {{id: broken, {FAIL}}}
errors:
  - {{id: alert, {OK}}}
""")
    assert execution.state.current == State.FAILED
    assert len(task_run(execution, "broken").attempts) == 2
    assert task_run(execution, "alert").state.current == State.SUCCESS


@pytest.mark.parametrize("where", ["task", "flow"])
def test_create_new_execution_ends_this_one_retried_and_the_next_attempt_runs(
        harrier, tmp_path, where):
    marker = tmp_path / "tried"
    policy = "{type: constant, interval: PT0.1S, maxAttempts: 3, behavior: CREATE_NEW_EXECUTION}"
    task_retry = f"\n    retry: {policy}" if where == "task" else ""
    flow_retry = f"retry: {policy}\n" if where == "flow" else ""
    first = harrier.run(f"""
id: new-execution-{where}
namespace: test
{flow_retry}tasks:
  - id: flaky
    type: io.kestra.plugin.scripts.shell.Commands{task_retry}
    commands: ["test -e {marker} || {{ touch {marker}; exit 1; }}"]
""")
    assert first.state.current == State.RETRIED
    found, _ = harrier.store.search_executions(ExecutionQuery(
        namespace="test", flow_id=f"new-execution-{where}"))
    [second] = [e for e in found if e.id != first.id]
    done = harrier.store.wait_terminal(second.id, 30)
    assert done.state.current == State.SUCCESS
    assert done.attempt_number == 2 and done.to_json()["originalId"] == first.id
    assert done.to_json()["metadata"]["attemptNumber"] == 2


def test_parallel_concurrent_is_a_sliding_window(harrier):
    execution = harrier.run("""
id: window
namespace: test
tasks:
  - id: fan
    type: io.kestra.plugin.core.flow.Parallel
    concurrent: 2
    tasks:
      - {id: slow, type: io.kestra.plugin.scripts.shell.Commands, commands: ["sleep 1"]}
      - {id: quick, type: io.kestra.plugin.scripts.shell.Commands, commands: ["sleep 0.1"]}
      - {id: third, type: io.kestra.plugin.scripts.shell.Commands, commands: ["sleep 0.1"]}
""")
    assert execution.state.current == State.SUCCESS
    slow, quick, third = (task_run(execution, t) for t in ("slow", "quick", "third"))
    # The third starts when `quick` frees its slot, not after the whole first wave.
    assert third.state.start_date >= quick.state.end_date
    assert third.state.start_date < slow.state.end_date


def test_restart_adds_an_attempt_to_the_failed_run_and_refuses_twice(harrier, tmp_path):
    flag = tmp_path / "fixed"
    failed = harrier.run(f"""
id: restartable
namespace: test
tasks:
  - id: first
    type: io.kestra.plugin.scripts.shell.Commands
    commands: ["echo once >> {tmp_path}/first.log"]
  - id: second
    type: io.kestra.plugin.scripts.shell.Commands
    commands: ["test -f {flag}"]
""")
    assert failed.state.current == State.FAILED
    flag.touch()
    restart_execution(harrier.store, harrier.app, failed.id, settings=harrier.settings)
    done = wait_for(lambda: (e := harrier.store.get_execution(failed.id)).state.current
                    .terminated and e.state.current != State.FAILED and e, timeout=90)
    assert done.state.current == State.SUCCESS
    second = task_run(done, "second")
    assert [a.state.current for a in second.attempts] == [State.FAILED, State.SUCCESS]
    assert [r.task_id for r in done.task_runs].count("second") == 1
    assert (tmp_path / "first.log").read_text() == "once\n"
    with pytest.raises(NothingToRestart, match="No task found to restart execution from!"):
        restart_execution(harrier.store, harrier.app, failed.id, settings=harrier.settings)
