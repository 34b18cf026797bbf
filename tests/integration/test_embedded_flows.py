"""Flows run end to end in embedded mode: real Celery canvas on the in-memory
transport, real worker threads, real subprocesses."""

from __future__ import annotations

import itertools
import os
import time

import pytest

from harrier.common.errors import FlowValidationError
from harrier.common.state import State
from tests.integration.embedded import logs, run_flow_text, states, task_run


def test_tasks_of_a_list_run_in_order_and_pass_outputs(embedded):
    execution = run_flow_text(embedded, """
id: chain
namespace: test
inputs:
  - id: who
    type: STRING
tasks:
  - id: first
    type: io.kestra.plugin.scripts.shell.Commands
    commands:
      - echo '::{"outputs":{"greeting":"hello"}}::'
  - id: second
    type: io.kestra.plugin.core.log.Log
    message: "{{ outputs.first.vars.greeting }}, {{ inputs.who }}"
  - id: third
    type: io.kestra.plugin.core.debug.Return
    format: "{{ outputs.second | length }} then {{ outputs['first'].exitCode }}"
""", {"who": "Ada"})
    assert execution.state.current == State.SUCCESS
    order = [r.task_id for r in execution.task_runs]
    assert order == ["first", "second", "third"]
    first_end = task_run(execution, "first").state.end_date
    assert first_end <= task_run(execution, "second").state.start_date
    assert logs(embedded, execution, "second") == ["hello, Ada"]
    assert task_run(execution, "third").outputs == {"value": "0 then 0"}


def test_parallel_branches_run_concurrently(embedded):
    execution = run_flow_text(embedded, """
id: parallel
namespace: test
tasks:
  - id: fan
    type: io.kestra.core.tasks.flows.Parallel
    tasks:
      - id: left
        type: io.kestra.plugin.scripts.shell.Commands
        commands: ["sleep 1"]
      - id: right
        type: io.kestra.plugin.scripts.shell.Commands
        commands: ["sleep 1"]
  - id: after
    type: io.kestra.plugin.core.log.Log
    message: done
""")
    assert execution.state.current == State.SUCCESS
    left, right = task_run(execution, "left"), task_run(execution, "right")
    # The two intervals overlap: each branch started before the other ended.
    assert left.state.start_date < right.state.end_date
    assert right.state.start_date < left.state.end_date
    after = task_run(execution, "after")
    assert after.state.start_date >= max(left.state.end_date, right.state.end_date)
    assert task_run(execution, "fan").state.current == State.SUCCESS


def test_retry_records_every_attempt_and_waits_the_interval(embedded):
    execution = run_flow_text(embedded, """
id: retry
namespace: test
tasks:
  - id: flaky
    type: io.kestra.plugin.scripts.shell.Commands
    retry:
      type: constant
      interval: PT0.3S
      maxAttempt: 3
    commands:
      - 'echo attempt {{ taskrun.attemptsCount }}'
      - 'if [ "{{ taskrun.attemptsCount }}" -lt 2 ]; then exit 3; fi'
""")
    assert execution.state.current == State.SUCCESS
    run = task_run(execution, "flaky")
    assert [a.state.current for a in run.attempts] == [State.FAILED, State.FAILED, State.SUCCESS]
    assert State.RETRYING in [h.state for h in run.state.histories]
    starts = [a.state.start_date for a in run.attempts]
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(starts)]
    assert all(gap >= 0.3 for gap in gaps), gaps
    assert logs(embedded, execution, "flaky")[0] == "attempt 0"


def test_retry_gives_up_after_max_attempts(embedded):
    execution = run_flow_text(embedded, """
id: retry-exhausted
namespace: test
tasks:
  - id: broken
    type: io.kestra.plugin.scripts.shell.Commands
    retry: {type: exponential, interval: PT0.05S, maxInterval: PT0.2S, maxAttempts: 3}
    commands: ["echo failing >&2; exit 7"]
  - id: never
    type: io.kestra.plugin.core.log.Log
    message: should not run
""")
    assert execution.state.current == State.FAILED
    run = task_run(execution, "broken")
    assert len(run.attempts) == 3
    assert "exited with code 7" in run.error and "failing" in run.error
    assert "never" not in states(execution)


def test_allow_failure_gives_warning_and_continues(embedded):
    execution = run_flow_text(embedded, """
id: allowed
namespace: test
tasks:
  - id: may-fail
    type: io.kestra.plugin.scripts.shell.Commands
    allowFailure: true
    commands: ["exit 1"]
  - id: next
    type: io.kestra.plugin.core.log.Log
    message: still here
""")
    assert execution.state.current == State.WARNING
    assert states(execution) == {"may-fail": State.WARNING, "next": State.SUCCESS}


def test_errors_tasks_run_when_the_flow_fails(embedded):
    execution = run_flow_text(embedded, """
id: with-errors
namespace: test
tasks:
  - id: boom
    type: io.kestra.plugin.scripts.shell.Commands
    commands: ["exit 2"]
errors:
  - id: alert
    type: io.kestra.plugin.core.log.Log
    message: "{{ task.id }} saw the failure"
finally:
  - id: cleanup
    type: io.kestra.plugin.core.log.Log
    message: cleaning up
""")
    assert execution.state.current == State.FAILED
    assert states(execution) == {"boom": State.FAILED, "alert": State.SUCCESS,
                                 "cleanup": State.SUCCESS}
    assert logs(embedded, execution, "alert") == ["alert saw the failure"]


def test_errors_tasks_do_not_run_on_success(embedded):
    execution = run_flow_text(embedded, """
id: no-errors
namespace: test
tasks:
  - id: fine
    type: io.kestra.plugin.core.log.Log
    message: fine
errors:
  - id: alert
    type: io.kestra.plugin.core.log.Log
    message: never
""")
    assert execution.state.current == State.SUCCESS
    assert "alert" not in states(execution)


@pytest.mark.parametrize(("region", "expected"), [("eu", "eu-job"), ("apac", "fallback")])
def test_switch_runs_the_matching_case(embedded, region, expected):
    execution = run_flow_text(embedded, """
id: switch
namespace: test
inputs:
  - id: region
    type: STRING
tasks:
  - id: route
    type: io.kestra.plugin.core.flow.Switch
    value: "{{ inputs.region }}"
    cases:
      eu:
        - id: eu-job
          type: io.kestra.plugin.core.log.Log
          message: eu
      us:
        - id: us-job
          type: io.kestra.plugin.core.log.Log
          message: us
    defaults:
      - id: fallback
        type: io.kestra.plugin.core.log.Log
        message: other
  - id: end
    type: io.kestra.plugin.core.log.Log
    message: end
""", {"region": region})
    assert execution.state.current == State.SUCCESS
    ran = states(execution)
    assert ran[expected] == State.SUCCESS
    assert set(ran) == {"route", expected, "end"}
    assert task_run(execution, "end").state.start_date >= task_run(
        execution, expected).state.end_date


@pytest.mark.parametrize(("flag", "branch"), [("true", "yes"), ("false", "no")])
def test_if_picks_a_branch_at_run_time(embedded, flag, branch):
    execution = run_flow_text(embedded, """
id: if
namespace: test
inputs:
  - id: go
    type: BOOLEAN
tasks:
  - id: check
    type: io.kestra.plugin.core.flow.If
    condition: "{{ inputs.go }}"
    then:
      - id: "yes"
        type: io.kestra.plugin.core.log.Log
        message: yes
    else:
      - id: "no"
        type: io.kestra.plugin.core.log.Log
        message: no
""", {"go": flag})
    assert execution.state.current == State.SUCCESS
    assert set(states(execution)) == {"check", branch}
    assert task_run(execution, "check").outputs["evaluationResult"] == (flag == "true")


def test_timeout_kills_the_whole_process_group(embedded, tmp_path):
    pid_file = tmp_path / "child.pid"
    started = time.monotonic()
    execution = run_flow_text(embedded, f"""
id: timeout
namespace: test
tasks:
  - id: slow
    type: io.kestra.plugin.scripts.shell.Commands
    timeout: PT1S
    commands:
      - "sleep 300 & echo $! > {pid_file}"
      - "wait"
""")
    assert time.monotonic() - started < 60
    assert execution.state.current == State.FAILED
    assert "timed out" in task_run(execution, "slow").error
    child = int(pid_file.read_text())
    deadline = time.monotonic() + 10
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child), "the background child survived the timeout"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:  # a zombie is dead for our purpose
        return stat.read().split()[2] != "Z"


def test_failing_command_reports_exit_code_and_stderr(embedded):
    execution = run_flow_text(embedded, """
id: missing-command
namespace: test
tasks:
  - id: typo
    type: io.kestra.plugin.scripts.shell.Commands
    commands: ["spark-submitt --version"]
""")
    assert execution.state.current == State.FAILED
    error = task_run(execution, "typo").error
    assert "exited with code 127" in error
    assert "spark-submitt" in error and "not found" in error


def test_template_naming_a_missing_task_is_rejected_before_anything_runs(embedded):
    with pytest.raises(FlowValidationError) as caught:
        run_flow_text(embedded, """
id: missing-task
namespace: test
tasks:
  - id: oops
    type: io.kestra.plugin.core.log.Log
    message: "{{ outputs.nothing.value }}"
""")
    [problem] = caught.value.problems
    assert (problem.line, problem.field) == (7, "tasks[0].message")
    assert "outputs.nothing" in problem.message and "names no task" in problem.message


def test_template_naming_a_missing_output_fails_the_task_clearly(embedded):
    execution = run_flow_text(embedded, """
id: missing-var
namespace: test
tasks:
  - id: first
    type: io.kestra.plugin.scripts.shell.Commands
    commands: ["echo '::{\\"outputs\\":{\\"rows\\":1}}::'"]
  - id: oops
    type: io.kestra.plugin.core.log.Log
    message: "{{ outputs.first.vars.nothing }}"
""")
    assert execution.state.current == State.FAILED
    error = task_run(execution, "oops").error
    assert "oops.message" in error and "nothing" in error and "rows" in error


def test_shell_commands_quote_untrusted_input_values(embedded, tmp_path):
    marker = tmp_path / "pwned"
    execution = run_flow_text(embedded, """
id: injection
namespace: test
inputs:
  - id: name
    type: STRING
tasks:
  - id: echo
    type: io.kestra.plugin.scripts.shell.Commands
    commands: ["echo {{ inputs.name }}"]
""", {"name": f"x; touch {marker}"})
    assert execution.state.current == State.SUCCESS
    assert not marker.exists()
    assert logs(embedded, execution, "echo") == [f"x; touch {marker}"]


def test_python_scripts_hold_untrusted_input_values_as_data(embedded, tmp_path):
    """python.Script's script and a python.Commands `.py` input file: the
    classic breakout string stays a string; nothing runs it."""
    marker = tmp_path / "pwned"
    attack = f'"; import os; os.system("touch {marker}"); x="'
    execution = run_flow_text(embedded, """
id: py-injection
namespace: test
inputs:
  - id: name
    type: STRING
  - id: count
    type: INT
tasks:
  - id: script
    type: io.kestra.plugin.scripts.python.Script
    script: |
      name = "{{ inputs.name }}"
      same = {{ inputs.name }}
      print(name == same, {{ inputs.count }} + 1, len(name))
  - id: commands
    type: io.kestra.plugin.scripts.python.Commands
    inputFiles:
      main.py: |
        name = '{{ inputs.name }}'  # {{ inputs.name }}
        print(name)
    commands: ["python3 main.py"]
""", {"name": attack, "count": 41})
    assert execution.state.current == State.SUCCESS, [r.error for r in execution.task_runs]
    assert not marker.exists()
    assert logs(embedded, execution, "script") == [f"True 42 {len(attack)}"]
    assert logs(embedded, execution, "commands") == [attack]


def test_kestra_python_helper_sets_outputs(embedded):
    execution = run_flow_text(embedded, """
id: kestra-helper
namespace: test
tasks:
  - id: py
    type: io.kestra.plugin.scripts.python.Script
    script: |
      from kestra import Kestra
      Kestra.outputs({"rows": 42, "table": "sales"})
  - id: use
    type: io.kestra.plugin.core.debug.Return
    format: "{{ outputs.py.vars.rows }} rows in {{ outputs.py.vars.table }}"
""")
    assert execution.state.current == State.SUCCESS, task_run(execution, "py").error
    assert task_run(execution, "use").outputs["value"] == "42 rows in sales"


def test_stdout_lines_stream_while_the_task_runs(embedded):
    execution = run_flow_text(embedded, """
id: streaming
namespace: test
tasks:
  - id: talk
    type: io.kestra.plugin.scripts.shell.Commands
    commands: ["echo one", "sleep 0.5", "echo two"]
""")
    entries = [e for e in embedded.store.read_logs(execution.id) if e.task_id == "talk"]
    assert [e.message for e in entries] == ["one", "two"]
    # "one" was stored while the task was still running, not at the end.
    assert (entries[1].timestamp - entries[0].timestamp).total_seconds() >= 0.4


def test_run_if_false_skips_and_a_broken_run_if_fails_the_task(embedded):
    execution = run_flow_text(embedded, """
id: run-if
namespace: test
tasks:
  - id: first
    type: io.kestra.plugin.scripts.shell.Commands
    commands: ["echo '::{\\"outputs\\":{\\"go\\":false}}::'"]
  - id: skipped
    type: io.kestra.plugin.core.log.Log
    runIf: "{{ outputs.first.vars.go }}"
    message: never
  - id: broken
    type: io.kestra.plugin.core.log.Log
    runIf: "{{ outputs.first.vars.missing }}"
    message: never either
""")
    assert states(execution) == {"first": State.SUCCESS, "skipped": State.SKIPPED,
                                 "broken": State.FAILED}
    assert "missing" in task_run(execution, "broken").error
    assert execution.state.current == State.FAILED
    assert logs(embedded, execution, "broken") == [task_run(execution, "broken").error]
