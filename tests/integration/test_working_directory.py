"""WorkingDirectory in embedded mode (test_working_directory_distributed.py
runs the flow tests on real worker processes): one directory shared by the
children in order, on one worker, inputFiles/outputFiles, a failing child,
a WorkingDirectory per loop value, what is rejected at validation."""

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


def test_children_share_one_directory_in_order_on_one_worker(run: Runner):
    done = run("""
id: wd
namespace: test
tasks:
  - id: wd
    type: io.kestra.plugin.core.flow.WorkingDirectory
    inputFiles:
      data.txt: "hello {{ flow.id }}"
    outputFiles: ["out/*.txt"]
    tasks:
      - id: write
        type: io.kestra.plugin.scripts.shell.Commands
        commands: ["mkdir -p out && cat data.txt > out/copy.txt && pwd > out/where.txt"]
      - id: read
        type: io.kestra.plugin.scripts.shell.Commands
        commands:
          - 'echo "::{\\"outputs\\":{\\"c\\":\\"$(cat out/copy.txt)\\",\\"d\\":\\"$(pwd)\\"}}::"'
  - id: after
    type: io.kestra.plugin.core.debug.Return
    format: "{{ outputs.read.vars.c }}"
""")
    assert done.state.current == State.SUCCESS, done.error
    runs = {r.task_id: r for r in done.task_runs}
    assert runs["after"].outputs["value"] == "hello wd"
    files = runs["wd"].outputs["outputFiles"]
    assert set(files) == {"out/copy.txt", "out/where.txt"}
    assert run.stored(files["out/copy.txt"]).decode().strip() == "hello wd"
    # One directory: the second child ran where the first wrote.
    assert run.stored(files["out/where.txt"]).decode().strip() == runs["read"].outputs["vars"]["d"]
    assert runs["write"].parent_task_run_id == runs["wd"].id
    assert runs["read"].state.start_date >= runs["write"].state.end_date
    workers = {r.attempts[-1].worker_id for r in (runs["wd"], runs["write"], runs["read"])}
    assert len(workers) == 1


def test_a_failed_child_stops_the_group_and_fails_it(run: Runner):
    done = run("""
id: wd-fails
namespace: test
tasks:
  - id: wd
    type: io.kestra.plugin.core.flow.WorkingDirectory
    tasks:
      - {id: tolerated, type: io.kestra.plugin.scripts.shell.Commands, commands: ["exit 3"],
         allowFailure: true}
      - {id: broken, type: io.kestra.plugin.scripts.shell.Commands, commands: ["exit 1"]}
      - {id: never, type: io.kestra.plugin.core.log.Log, message: no}
  - {id: after, type: io.kestra.plugin.core.log.Log, message: no}
""")
    assert done.state.current == State.FAILED
    found = {r.task_id: r.state.current for r in done.task_runs}
    assert found == {"wd": State.FAILED, "tolerated": State.WARNING, "broken": State.FAILED}
    wd = next(r for r in done.task_runs if r.task_id == "wd")
    assert "task broken failed: command exited with code 1" in (wd.error or "")


def test_a_working_directory_per_loop_value(run: Runner):
    done = run("""
id: wd-loop
namespace: test
tasks:
  - id: each
    type: io.kestra.plugin.core.flow.ForEach
    values: [a, b]
    concurrencyLimit: 0
    tasks:
      - id: wd
        type: io.kestra.plugin.core.flow.WorkingDirectory
        tasks:
          - id: put
            type: io.kestra.plugin.scripts.shell.Commands
            commands: ["echo {{ parent.taskrun.value }} > v"]
          - id: get
            type: io.kestra.plugin.scripts.shell.Commands
            commands: ['echo "::{\\"outputs\\":{\\"v\\":\\"$(cat v)\\"}}::"']
  - id: after
    type: io.kestra.plugin.core.debug.Return
    format: "{{ outputs.get.a.vars.v }}{{ outputs.get.b.vars.v }}"
""")
    assert done.state.current == State.SUCCESS, done.error
    assert next(r for r in done.task_runs if r.task_id == "after").outputs["value"] == "ab"


@pytest.mark.parametrize(("extra", "expected"), [
    ("    cache: {patterns: ['x']}\n", "cache: not supported by Harrier"),
    ("    namespaceFiles: {enabled: true}\n", "namespaceFiles: namespace files are not"),
    ("", "only runnable tasks"),
])
def test_what_a_working_directory_rejects(extra, expected):
    child = ("      - {id: inner, type: io.kestra.plugin.core.flow.Sequential, tasks: "
             "[{id: x, type: io.kestra.plugin.core.log.Log, message: m}]}\n") if not extra else \
        "      - {id: x, type: io.kestra.plugin.core.log.Log, message: m}\n"
    with pytest.raises(FlowValidationError) as caught:
        parse_flow("id: bad\nnamespace: test\ntasks:\n  - id: wd\n"
                   "    type: io.kestra.plugin.core.flow.WorkingDirectory\n"
                   f"{extra}    tasks:\n{child}", "wd.yaml")
    assert expected in str(caught.value) and "wd.yaml:4:" in str(caught.value)
