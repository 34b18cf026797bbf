"""The tests of test_kestra2_dialect.py on a real Redis with real prefork workers."""

from __future__ import annotations

import time
from typing import Any

import pytest

from harrier.common.state import State
from harrier.scheduler.task_rescue import TaskRescue
from harrier.worker.loop_runs import iteration_id
from tests.integration import test_kestra2_dialect
from tests.integration.embedded import wait_for
from tests.integration.modes import Runner, flow_tests
from tests.integration.test_kestra2_dialect import _runs

pytestmark = pytest.mark.slow

globals().update(flow_tests(test_kestra2_dialect))


@pytest.fixture
def run(cluster: Any) -> Runner:
    return Runner("distributed", cluster=cluster)


def test_a_parent_whose_loop_iterations_run_is_not_taken_for_stalled(cluster: Any, tmp_path):
    runner = Runner("distributed", cluster=cluster)
    gate = tmp_path / "go"
    started = runner.start(f"""
id: loop-stall
namespace: test
tasks:
  - id: loop
    type: io.kestra.plugin.core.flow.Loop
    values: [1]
    tasks:
      - id: work
        type: io.kestra.plugin.scripts.shell.Commands
        commands: ["while ! test -e {gate}; do sleep 0.1; done"]
""")
    wait_for(lambda: (loop := cluster.store.find_task_run(started.id, "loop")) is not None
             and any(r.task_id == "work" for r in _runs(runner, iteration_id(loop.id, 0))),
             timeout=30)
    # Long after the parent last moved (its only run waits on the iteration):
    rescue = TaskRescue(cluster.store, runner.app, cluster.settings,
                        clock=lambda: time.time() + 3600)
    assert rescue._nudge(started.id) is False
    gate.touch()
    assert runner.wait(started.id, timeout=30).state.current == State.SUCCESS
