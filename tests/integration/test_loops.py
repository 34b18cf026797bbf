"""ForEach, EachSequential and EachParallel in embedded mode (and across real
worker processes on a real Redis: test_loops_distributed.py runs these tests):
values as a list, a JSON string or an expression, taskrun.value/iteration,
parent/parents in nested loops, outputs per value, the window of
concurrencyLimit, failures, errors tasks, kill and restart mid-loop."""

from __future__ import annotations

from typing import Any

import pytest

from harrier.common.execution import Execution
from harrier.common.flow import parse_flow
from harrier.common.state import State
from tests.integration.embedded import wait_for
from tests.integration.modes import Runner

OK = "type: io.kestra.plugin.core.log.Log, message: ok"


@pytest.fixture
def run(embedded: Any) -> Runner:
    # tests/integration/test_loops_distributed.py runs the same tests with a
    # Runner on real worker processes (one module per mode: the cluster fixture
    # points the Celery app at its broker).
    return Runner("embedded", runtime=embedded)


def runs_of(execution: Execution, task_id: str) -> list[Any]:
    return [r for r in execution.task_runs if r.task_id == task_id]


def by_value(execution: Execution, task_id: str) -> dict[str | None, Any]:
    return {r.value: r for r in runs_of(execution, task_id)}


def test_for_each_runs_its_tasks_once_per_value_in_order(run: Runner):
    done = run("""
id: loop
namespace: test
tasks:
  - id: each
    type: io.kestra.plugin.core.flow.ForEach
    values: ["a", "b", 3, {"k": "v"}, "a"]
    tasks:
      - id: first
        type: io.kestra.plugin.core.debug.Return
        format: "{{ taskrun.value }}#{{ taskrun.iteration }}"
      - id: second
        type: io.kestra.plugin.core.debug.Return
        format: "{{ outputs.first[taskrun.value].value }}!"
  - id: after
    type: io.kestra.plugin.core.debug.Return
    format: >-
      {{ outputs.second['a'].value }} {{ outputs.second['3'].value }}
      {{ outputs.first | length }}
""")
    assert done.state.current == State.SUCCESS, done.error
    each = runs_of(done, "each")[0]
    # Distinct values, non-strings as compact JSON, as Kestra does.
    first = by_value(done, "first")
    assert {v: r.outputs["value"] for v, r in first.items()} == {
        "a": "a#0", "b": "b#1", "3": "3#2", '{"k":"v"}': '{"k":"v"}#3'}
    for r in [*runs_of(done, "first"), *runs_of(done, "second")]:
        assert r.parent_task_run_id == each.id  # nested under the loop in the API
    assert runs_of(done, "after")[0].outputs["value"] == "a#0! 3#2! 4"
    # concurrencyLimit defaults to 1: one value's tasks end before the next value's start.
    ordered = sorted(done.task_runs, key=lambda r: r.state.start_date)
    values = [r.value for r in ordered if r.task_id in ("first", "second")]
    assert values == ["a", "a", "b", "b", "3", "3", '{"k":"v"}', '{"k":"v"}']
    api = done.to_json()["taskRunList"]
    child = next(t for t in api if t["taskId"] == "second" and t["value"] == "b")
    assert child["parentTaskRunId"] == each.id and child["iteration"] == 1


def test_values_from_a_json_string_and_from_an_expression(run: Runner):
    done = run("""
id: loop-expr
namespace: test
tasks:
  - id: make
    type: io.kestra.plugin.core.debug.Return
    format: '["x", "y"]'
  - id: json
    type: io.kestra.plugin.core.flow.ForEach
    values: '["p", "q"]'
    tasks:
      - {id: from-json, type: io.kestra.plugin.core.debug.Return, format: "{{ taskrun.value }}"}
  - id: expr
    type: io.kestra.plugin.core.flow.ForEach
    values: "{{ outputs.make.value }}"
    concurrencyLimit: 0
    tasks:
      - {id: from-expr, type: io.kestra.plugin.core.debug.Return, format: "{{ taskrun.value }}"}
""")
    assert done.state.current == State.SUCCESS, done.error
    assert set(by_value(done, "from-json")) == {"p", "q"}
    assert set(by_value(done, "from-expr")) == {"x", "y"}


def test_nested_loops_see_parent_values_and_keep_outputs_per_value(run: Runner):
    done = run("""
id: nested
namespace: test
tasks:
  - id: outer
    type: io.kestra.plugin.core.flow.ForEach
    values: ["s1", "s2"]
    concurrencyLimit: 0
    tasks:
      - id: fan
        type: io.kestra.plugin.core.flow.Parallel
        tasks:
          - id: inner
            type: io.kestra.plugin.core.flow.ForEach
            values: ["a", "b"]
            tasks:
              - id: leaf
                type: io.kestra.plugin.core.debug.Return
                format: "{{ parents[1].taskrun.value }}/{{ taskrun.value }}"
              - id: check
                type: io.kestra.plugin.core.flow.If
                condition: "{{ taskrun.value == 'b' }}"
                then:
                  - id: deep
                    type: io.kestra.plugin.core.debug.Return
                    format: >-
                      {{ parent.taskrun.value }}
                      {{ outputs.leaf[parents[2].taskrun.value][parent.taskrun.value].value }}
  - id: after
    type: io.kestra.plugin.core.debug.Return
    format: "{{ outputs.leaf.s2.a.value }} {{ outputs.deep['s1']['b'].value }}"
""")
    assert done.state.current == State.SUCCESS, done.error
    leaves = sorted(r.outputs["value"] for r in runs_of(done, "leaf"))
    assert leaves == ["s1/a", "s1/b", "s2/a", "s2/b"]
    assert sorted(r.outputs["value"] for r in runs_of(done, "deep")) == ["b s1/b", "b s2/b"]
    assert runs_of(done, "after")[0].outputs["value"] == "s2/a b s1/b"
    # Two inner loops (one per outer value), each nested under its own Parallel.
    fans = {r.id: r for r in runs_of(done, "fan")}
    assert sorted(r.value for r in fans.values()) == ["s1", "s2"]
    inners = runs_of(done, "inner")
    assert {r.parent_task_run_id for r in inners} == set(fans)
    assert all(r.value is None for r in inners)  # only a loop's direct children get its value


def test_a_failed_iteration_stops_the_loop_and_skips_what_follows(run: Runner):
    done = run(f"""
id: loop-fails
namespace: test
tasks:
  - id: each
    type: io.kestra.plugin.core.flow.ForEach
    values: ["ok1", "bad", "ok2", "ok3"]
    tasks:
      - id: work
        type: io.kestra.plugin.scripts.shell.Commands
        commands: ["test {{{{ taskrun.value }}}} != bad"]
      - {{id: then, {OK}}}
    errors:
      - id: handle
        type: io.kestra.plugin.core.debug.Return
        format: "handled"
  - {{id: never, {OK}}}
""")
    assert done.state.current == State.FAILED
    work = by_value(done, "work")
    assert set(work) == {"ok1", "bad"}  # no value after the failed one starts
    assert work["bad"].state.current == State.FAILED
    assert set(by_value(done, "then")) == {"ok1"}  # its iteration stopped there
    assert runs_of(done, "each")[0].state.current == State.FAILED
    handle = runs_of(done, "handle")
    assert len(handle) == 1 and handle[0].state.current == State.SUCCESS
    assert handle[0].parent_task_run_id == runs_of(done, "each")[0].id
    assert not runs_of(done, "never")


def test_concurrency_limit_is_a_window_of_values(run: Runner, tmp_path):
    log = tmp_path / "events.log"
    done = run(f"""
id: loop-window
namespace: test
tasks:
  - id: each
    type: io.kestra.plugin.core.flow.ForEach
    values: [1, 2, 3, 4, 5, 6]
    concurrencyLimit: 2
    tasks:
      - id: work
        type: io.kestra.plugin.scripts.shell.Commands
        commands:
          - "echo start >> {log}"
          - "sleep 0.3"
          - "echo end >> {log}"
""")
    assert done.state.current == State.SUCCESS, done.error
    running, peak = 0, 0
    for line in log.read_text().split():
        running += 1 if line == "start" else -1
        peak = max(peak, running)
    assert peak == 2
    assert len(runs_of(done, "work")) == 6


def test_each_sequential_and_each_parallel(run: Runner):
    done = run("""
id: legacy-each
namespace: test
tasks:
  - id: seq
    type: io.kestra.core.tasks.flows.EachSequential
    value: '["a", "b"]'
    tasks:
      - {id: s1, type: io.kestra.plugin.core.debug.Return, format: "{{ taskrun.value }}"}
      - id: s2
        type: io.kestra.plugin.core.debug.Return
        format: "{{ outputs.s1[taskrun.value].value }}"
  - id: par
    type: io.kestra.plugin.core.flow.EachParallel
    value: ["x", "y", "z"]
    concurrent: 2
    tasks:
      - id: group
        type: io.kestra.plugin.core.flow.Sequential
        tasks:
          - id: p1
            type: io.kestra.plugin.core.debug.Return
            format: "{{ parents[0].taskrun.value }}"
""")
    assert done.state.current == State.SUCCESS, done.error
    assert {v: r.outputs["value"] for v, r in by_value(done, "s2").items()} == \
        {"a": "a", "b": "b"}
    assert sorted(r.outputs["value"] for r in runs_of(done, "p1")) == ["x", "y", "z"]


@pytest.mark.parametrize(("values", "expected"), [
    ("42", "values must be a list, a JSON list or an expression; found int 42"),
    ("'{\"a\": 1}'", "values must be a list; the JSON"),
    ("'not json'", "values must be a list, a JSON list or an expression"),
])
def test_a_loop_over_something_not_a_list_is_a_validation_error(values, expected):
    from harrier.common.errors import FlowValidationError

    with pytest.raises(FlowValidationError) as caught:
        parse_flow(f"""
id: bad
namespace: test
tasks:
  - id: each
    type: io.kestra.plugin.core.flow.ForEach
    values: {values}
    tasks:
      - {{id: t, {OK}}}
""", "bad.yaml")
    assert "bad.yaml:7:" in str(caught.value) and expected in str(caught.value)


def test_negative_concurrency_limit_is_a_validation_error():
    from harrier.common.errors import FlowValidationError

    with pytest.raises(FlowValidationError) as caught:
        parse_flow(f"""
id: bad
namespace: test
tasks:
  - id: each
    type: io.kestra.plugin.core.flow.ForEach
    values: [1]
    concurrencyLimit: -1
    tasks:
      - {{id: t, {OK}}}
""", "bad.yaml")
    assert "bad.yaml:8:" in str(caught.value) and "concurrencyLimit" in str(caught.value)


def test_an_expression_that_is_not_a_list_fails_the_loop(run: Runner):
    done = run(f"""
id: loop-not-list
namespace: test
tasks:
  - id: each
    type: io.kestra.plugin.core.flow.ForEach
    values: "{{{{ 'just text' }}}}"
    tasks:
      - {{id: t, {OK}}}
""")
    assert done.state.current == State.FAILED
    each = runs_of(done, "each")[0]
    assert "values must render to a JSON list" in (each.error or "")
    assert not runs_of(done, "t")


def test_a_retry_inside_a_loop_retries_that_value_only(run: Runner, tmp_path):
    done = run(f"""
id: loop-retry
namespace: test
tasks:
  - id: each
    type: io.kestra.plugin.core.flow.ForEach
    values: ["a", "b"]
    concurrencyLimit: 0
    tasks:
      - id: flaky
        type: io.kestra.plugin.scripts.shell.Commands
        retry: {{type: constant, interval: PT0.1S, maxAttempts: 3}}
        commands:
          - "cd {tmp_path} && test {{{{ taskrun.value }}}} = a || test -e {{{{ taskrun.value }}}}
            || {{ touch {{{{ taskrun.value }}}}; exit 1; }}"
""")
    assert done.state.current == State.SUCCESS, done.error
    flaky = by_value(done, "flaky")
    assert len(flaky["a"].attempts) == 1
    assert [a.state.current for a in flaky["b"].attempts] == [State.FAILED, State.SUCCESS]


def test_restart_runs_the_failed_value_again_then_the_values_not_yet_run(run: Runner,
                                                                       tmp_path):
    fixed = tmp_path / "fixed"
    started = run.start(f"""
id: loop-restart
namespace: test
tasks:
  - id: each
    type: io.kestra.plugin.core.flow.ForEach
    values: ["a", "b", "c"]
    tasks:
      - id: work
        type: io.kestra.plugin.scripts.shell.Commands
        commands:
          - "echo {{{{ taskrun.value }}}} >> {tmp_path}/ran.log"
          - "test {{{{ taskrun.value }}}} != b || test -e {fixed}"
    errors:
      - {{id: handle, {OK}}}
  - {{id: after, {OK}}}
""")
    failed = run.wait(started.id)
    assert failed.state.current == State.FAILED
    assert set(by_value(failed, "work")) == {"a", "b"}
    fixed.touch()
    done = run.restart(started.id)
    assert done.state.current == State.SUCCESS, [(r.task_id, r.value, r.state.current)
                                                 for r in done.task_runs]
    work = by_value(done, "work")
    assert set(work) == {"a", "b", "c"}
    assert len(work["b"].attempts) == 2 and len(work["a"].attempts) == 1
    assert (tmp_path / "ran.log").read_text().split() == ["a", "b", "b", "c"]
    assert runs_of(done, "each")[0].state.current == State.SUCCESS
    assert not runs_of(done, "handle")  # the loop succeeded this time: no errors tasks
    assert runs_of(done, "after")[0].state.current == State.SUCCESS


def test_kill_in_the_middle_of_a_loop_then_restart_finishes_it(run: Runner, tmp_path):
    gate = tmp_path / "go"
    started = run.start(f"""
id: loop-kill
namespace: test
tasks:
  - id: each
    type: io.kestra.plugin.core.flow.ForEach
    values: [1, 2, 3, 4]
    concurrencyLimit: 2
    tasks:
      - id: work
        type: io.kestra.plugin.scripts.shell.Commands
        commands:
          - "test {{{{ taskrun.value }}}} = 1 || test -e {gate} || sleep 60"
""")
    wait_for(lambda: sum(r.state.current == State.RUNNING and r.task_id == "work"
                         for r in run.store.task_runs(started.id)) >= 1
             and any(r.task_id == "work" and r.value == "3"
                     for r in run.store.task_runs(started.id)))
    run.kill(started.id)
    killed = run.wait(started.id)
    assert killed.state.current == State.KILLED
    assert "4" not in by_value(killed, "work")  # nothing starts after the kill
    gate.touch()
    done = run.restart(started.id)
    assert done.state.current == State.SUCCESS, [(r.task_id, r.value, r.state.current)
                                                 for r in done.task_runs]
    work = by_value(done, "work")
    assert set(work) == {"1", "2", "3", "4"}
    assert len(work["1"].attempts) == 1  # what succeeded is kept


def test_loop_until_repeats_until_the_condition_holds(run: Runner):
    done = run("""
id: until
namespace: test
tasks:
  - id: loop
    type: io.kestra.plugin.core.flow.LoopUntil
    condition: "{{ outputs.count.value == '3' }}"
    checkFrequency: {interval: PT0.1S, maxIterations: 10}
    tasks:
      - id: count
        type: io.kestra.plugin.core.debug.Return
        format: "{{ outputs.loop.iterationCount }}"
      - id: group
        type: io.kestra.plugin.core.flow.Sequential
        tasks:
          - id: inner
            type: io.kestra.plugin.core.debug.Return
            format: "{{ outputs.count.value }}"
  - id: after
    type: io.kestra.plugin.core.debug.Return
    format: "{{ outputs.count.value }} {{ outputs.loop.iterationCount }}"
""")
    assert done.state.current == State.SUCCESS, done.error
    loop = runs_of(done, "loop")[0]
    counts = runs_of(done, "count")
    # Every iteration's runs are kept, nested under the loop, numbered.
    assert sorted((r.iteration, r.outputs["value"]) for r in counts) == \
        [(0, "1"), (1, "2"), (2, "3")]
    assert {r.parent_task_run_id for r in counts} == {loop.id}
    assert sorted(r.outputs["value"] for r in runs_of(done, "inner")) == ["1", "2", "3"]
    assert runs_of(done, "after")[0].outputs["value"] == "3 3"


@pytest.mark.parametrize(("fail", "expected"), [(True, State.FAILED), (False, State.SUCCESS)])
def test_wait_for_stops_at_max_iterations(run: Runner, fail, expected):
    done = run(f"""
id: wait-for
namespace: test
tasks:
  - id: loop
    type: io.kestra.plugin.core.flow.WaitFor
    condition: "false"
    failOnMaxReached: {str(fail).lower()}
    checkFrequency: {{interval: PT0.05S, maxIterations: 3}}
    tasks:
      - {{id: probe, {OK}}}
""")
    assert done.state.current == expected
    assert len(runs_of(done, "probe")) == 3
    messages = [e.message for e in run.store.read_logs(done.id)]
    assert any("max iterations reached (3)" in m for m in messages)


def test_loop_until_stops_at_max_duration(run: Runner):
    done = run(f"""
id: until-duration
namespace: test
tasks:
  - id: loop
    type: io.kestra.plugin.core.flow.LoopUntil
    condition: "false"
    failOnMaxReached: true
    checkFrequency: {{interval: PT0.2S, maxDuration: PT0.5S}}
    tasks:
      - {{id: probe, {OK}}}
""")
    assert done.state.current == State.FAILED
    loop = runs_of(done, "loop")[0]
    assert "max duration reached" in (loop.error or "")
    # Checked after each iteration: it stopped at the first check past 0.5 s
    # (every 0.2 s: far fewer than ten iterations, however loaded the machine).
    assert 1 <= len(runs_of(done, "probe")) < 10


def test_a_loop_until_waiting_for_its_next_check_holds_nothing_and_is_killed_at_once(
        run: Runner):
    started = run.start(f"""
id: until-kill
namespace: test
tasks:
  - id: loop
    type: io.kestra.plugin.core.flow.LoopUntil
    condition: "false"
    checkFrequency: {{interval: PT1H}}
    tasks:
      - {{id: probe, {OK}}}
""")
    wait_for(lambda: any(r.task_id == "probe" and r.state.current == State.SUCCESS
                         for r in run.store.task_runs(started.id)))
    # Between two checks no task runs: the next check is a delayed message.
    assert not [r for r in run.store.task_runs(started.id)
                if r.task_id != "loop" and not r.state.current.terminated]
    run.kill(started.id)
    killed = run.wait(started.id, timeout=30)
    assert killed.state.current == State.KILLED
    assert runs_of(killed, "loop")[0].state.current == State.KILLED


def test_loop_until_rejects_a_non_positive_interval():
    from harrier.common.errors import FlowValidationError

    with pytest.raises(FlowValidationError) as caught:
        parse_flow(f"""
id: bad
namespace: test
tasks:
  - id: loop
    type: io.kestra.plugin.core.flow.LoopUntil
    condition: "true"
    checkFrequency: {{interval: PT0S}}
    tasks:
      - {{id: t, {OK}}}
""", "bad.yaml")
    assert "bad.yaml:8:" in str(caught.value) and "positive duration" in str(caught.value)


def test_restart_of_a_failed_loop_until_iteration_goes_on_from_it(run: Runner, tmp_path):
    fixed = tmp_path / "fixed"
    started = run.start(f"""
id: until-restart
namespace: test
tasks:
  - id: loop
    type: io.kestra.plugin.core.flow.LoopUntil
    condition: "{{{{ outputs.loop.iterationCount >= 2 }}}}"
    checkFrequency: {{interval: PT0.05S}}
    tasks:
      - id: work
        type: io.kestra.plugin.scripts.shell.Commands
        commands: ["test {{{{ outputs.loop.iterationCount }}}} = 1 || test -e {fixed}"]
""")
    failed = run.wait(started.id)
    assert failed.state.current == State.FAILED
    assert sorted(r.iteration for r in runs_of(failed, "work")) == [0, 1]
    fixed.touch()
    done = run.restart(started.id)
    assert done.state.current == State.SUCCESS, [(r.task_id, r.iteration, r.state.current)
                                                 for r in done.task_runs]
    work = sorted(runs_of(done, "work"), key=lambda r: r.iteration)
    assert [len(r.attempts) for r in work] == [1, 2]


def test_a_retry_on_the_loop_runs_again_only_the_failed_value(run: Runner, tmp_path):
    done = run(f"""
id: loop-retried
namespace: test
tasks:
  - id: each
    type: io.kestra.plugin.core.flow.ForEach
    values: ["a", "b", "c"]
    retry: {{type: constant, interval: PT0.1S, maxAttempts: 2}}
    tasks:
      - id: work
        type: io.kestra.plugin.scripts.shell.Commands
        commands:
          - "echo {{{{ taskrun.value }}}} >> {tmp_path}/ran.log"
          - "cd {tmp_path} && test {{{{ taskrun.value }}}} != b || test -e b
            || {{ touch b; exit 1; }}"
""")
    assert done.state.current == State.SUCCESS, [(r.task_id, r.value, r.state.current)
                                                 for r in done.task_runs]
    assert (tmp_path / "ran.log").read_text().split() == ["a", "b", "b", "c"]
    each = runs_of(done, "each")[0]
    assert State.RETRYING in [h.state for h in each.state.histories]


def test_a_loop_cut_short_while_starting_its_iterations_is_resumed_by_the_replay(
        embedded, monkeypatch):
    """A worker that dies while a loop starts thousands of iterations leaves some
    claimed and never sent. The fault is injected (a crash cannot be made on
    demand at that point): _start_iteration raises after five iterations, and
    nothing is sent. The broker's redelivery of the previous task's message is
    then played (Engine.replay, what execute_task does with a redelivered run
    that had ended): every iteration runs, the loop and the flow end."""
    from harrier.worker.engine import Engine

    real = Engine._start_iteration
    calls = {"n": 0}

    def crashing(self: Engine, *args: Any) -> None:
        calls["n"] += 1
        if calls["n"] > 5:
            raise RuntimeError("injected crash: the worker dies here")
        real(self, *args)

    runner = Runner("embedded", runtime=embedded)
    monkeypatch.setattr(Engine, "_start_iteration", crashing)
    started = runner.start(f"""
id: loop-cut-short
namespace: test
tasks:
  - {{id: before, {OK}}}
  - id: each
    type: io.kestra.plugin.core.flow.ForEach
    values: [{", ".join(str(i) for i in range(20))}]
    concurrencyLimit: 0
    tasks:
      - {{id: work, {OK}}}
""")
    wait_for(lambda: calls["n"] > 5)
    monkeypatch.setattr(Engine, "_start_iteration", real)
    assert not runner.store.execution_state(started.id).terminated
    before = next(r for r in runner.store.task_runs(started.id) if r.task_id == "before")
    engine = Engine.load(embedded, started.id)
    engine.replay(engine.index.task("before"), before)
    engine.flush()
    done = runner.wait(started.id, timeout=60)
    assert done.state.current == State.SUCCESS, done.error
    assert sorted(int(r.value) for r in runs_of(done, "work")) == list(range(20))
