"""The loop tests of test_loops.py on a real Redis with real prefork worker
processes (the `cluster` fixture)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration import test_loops
from tests.integration.modes import Runner, flow_tests

pytestmark = pytest.mark.slow

# Every test of test_loops.py that runs a flow, run here by the cluster.
globals().update(flow_tests(test_loops))


@pytest.fixture
def run(cluster: Any) -> Runner:
    return Runner("distributed", cluster=cluster)


def test_a_loop_child_whose_worker_dies_is_rescued_as_the_same_value(cluster, tmp_path):
    """The scheduler's rescue of a lost run sends it again with its loop value
    and value path: the new attempt lands on the same run, and the loop ends."""
    import time
    from dataclasses import replace

    from harrier.common.celery_app import app
    from harrier.common.state import State
    from harrier.scheduler.task_rescue import TaskRescue
    from tests.integration.embedded import wait_for

    pid_file = tmp_path / "task.pid"
    runner = Runner("distributed", cluster=cluster)
    started = runner.start(f"""
id: loop-crash
namespace: test
tasks:
  - id: each
    type: io.kestra.plugin.core.flow.ForEach
    values: ["a", "b"]
    tasks:
      - id: long
        type: io.kestra.plugin.scripts.shell.Commands
        commands:
          - "if [ {{{{ taskrun.value }}}} = b ] && [ ! -f {pid_file} ]; then
             echo $$ > {pid_file}; fi"
          - "sleep 2"
""")
    wait_for(pid_file.exists)
    run = wait_for(lambda: next((r for r in cluster.store.task_runs(started.id)
                                 if r.task_id == "long" and r.value == "b"
                                 and r.state.current == State.RUNNING), None))
    victim = next(w for w in cluster.workers if w.hostname == run.attempts[-1].worker_id)
    cluster.kill(victim)
    try:
        settings = replace(cluster.settings, task_lost_after=1)
        rescue = TaskRescue(cluster.store, app, settings, clock=lambda: time.time() + 120)
        rescue._up_since = time.monotonic() - 3600  # Redis has been up all along
        handled = wait_for(lambda: rescue.sweep(), timeout=30)
        assert [(r.task_id, r.value) for r in handled] == [("long", "b")]
        done = runner.wait(started.id, timeout=90)
        assert done.state.current == State.SUCCESS
        runs = [r for r in done.task_runs if r.task_id == "long"]
        assert sorted(r.value_path for r in runs) == [("a",), ("b",)]  # no stray run
        b = next(r for r in runs if r.value == "b")
        assert len(b.attempts) >= 2
    finally:
        cluster.workers.remove(victim)
        cluster.start_worker(victim.name)
