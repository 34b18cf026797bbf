"""Distributed mode end to end: a real Redis broker and store, real prefork
`harrier worker` processes, crashes made with kill -9."""

from __future__ import annotations

import os
import time

import pytest

from harrier.common.flow import parse_flow
from harrier.common.state import State
from harrier.scheduler.control import kill_execution, restart_execution
from harrier.scheduler.executions import create_execution, start_execution
from tests.fixtures.workers import Cluster
from tests.integration.embedded import wait_for

pytestmark = pytest.mark.slow


def start(cluster: Cluster, text: str, inputs: dict | None = None):
    flow = parse_flow(text, "test.yaml")
    execution = create_execution(cluster.store, flow, inputs or {})
    from harrier.common.celery_app import app

    start_execution(app, flow, execution, store=cluster.store)
    return execution




def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_a_flow_runs_across_worker_processes(cluster):
    execution = start(cluster, """
id: distributed
namespace: test
tasks:
  - id: fan
    type: io.kestra.plugin.core.flow.Parallel
    tasks:
      - {id: a, type: io.kestra.plugin.scripts.shell.Commands, commands: ["sleep 0.5"]}
      - {id: b, type: io.kestra.plugin.scripts.shell.Commands, commands: ["sleep 0.5"]}
      - {id: c, type: io.kestra.plugin.scripts.shell.Commands, commands: ["sleep 0.5"]}
      - {id: d, type: io.kestra.plugin.scripts.shell.Commands, commands: ["sleep 0.5"]}
  - id: last
    type: io.kestra.plugin.scripts.shell.Commands
    commands: ["echo '::{\\"outputs\\":{\\"n\\":4}}::'"]
""")
    done = cluster.store.wait_terminal(execution.id, 60)
    assert done.state.current == State.SUCCESS
    workers = {r.attempts[0].worker_id for r in done.task_runs if r.attempts}
    assert workers <= {w.hostname for w in cluster.workers}
    assert len(workers) == 2, "four parallel branches should spread over both workers"
    assert next(r for r in done.task_runs if r.task_id == "last").outputs["vars"] == {"n": 4}


def test_a_task_whose_worker_is_killed_runs_again_on_another(cluster, tmp_path):
    pid_file = tmp_path / "task.pid"
    execution = start(cluster, f"""
id: crash
namespace: test
tasks:
  - id: long
    type: io.kestra.plugin.scripts.shell.Commands
    commands:
      - "if [ ! -f {pid_file}.done ]; then echo $$ > {pid_file}; touch {pid_file}.done; fi"
      - "sleep 3"
      - "echo finished"
""")
    run = wait_for(lambda: next((r for r in cluster.store.task_runs(execution.id)
                                 if r.state.current == State.RUNNING), None))
    victim = next(w for w in cluster.workers if w.hostname == run.attempts[-1].worker_id)
    wait_for(pid_file.exists)
    cluster.kill(victim)  # the whole worker: parent and prefork children
    # What it was running died with it (runners/group_reaper.py).
    wait_for(lambda: _gone(int(pid_file.read_text())), timeout=5)
    done = cluster.store.wait_terminal(execution.id, 90)
    try:
        assert done.state.current == State.SUCCESS
        [run] = done.task_runs
        assert len(run.attempts) == 2
        assert run.attempts[0].error == "worker lost while running this attempt"
        assert run.attempts[1].worker_id != victim.hostname
    finally:
        cluster.workers.remove(victim)
        cluster.start_worker(victim.name)


def test_kill_stops_the_running_task_and_nothing_after_it_runs(cluster, tmp_path):
    marker = tmp_path / "after"
    execution = start(cluster, f"""
id: killable
namespace: test
tasks:
  - id: slow
    type: io.kestra.plugin.scripts.shell.Commands
    commands: ["sleep 30"]
  - id: after
    type: io.kestra.plugin.scripts.shell.Commands
    commands: ["touch {marker}"]
""")
    wait_for(lambda: any(r.state.current == State.RUNNING
                         for r in cluster.store.task_runs(execution.id)))
    started = time.monotonic()
    killed = kill_execution(cluster.store, execution.id)
    assert killed.state.current in (State.KILLING, State.KILLED)
    done = cluster.store.wait_terminal(execution.id, 30)
    assert time.monotonic() - started < 15
    assert done.state.current == State.KILLED
    assert [h.state for h in done.state.histories][-2:] == [State.KILLING, State.KILLED]
    assert {r.task_id: r.state.current for r in done.task_runs} == {"slow": State.KILLED}
    time.sleep(0.5)
    assert not marker.exists()


def test_restart_reruns_from_the_failed_task(cluster, tmp_path):
    flag = tmp_path / "fixed"
    execution = start(cluster, f"""
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
    failed = cluster.store.wait_terminal(execution.id, 60)
    assert failed.state.current == State.FAILED
    flag.touch()
    restart_execution(cluster.store, __import__("harrier.common.celery_app").common.celery_app.app,
                      execution.id)
    done = wait_for(lambda: (e := cluster.store.get_execution(execution.id)).state.current
                    .terminated and e.state.current != State.FAILED and e, timeout=60)
    assert done.state.current == State.SUCCESS
    assert (tmp_path / "first.log").read_text() == "once\n"  # not re-run
    assert State.RESTARTED in [h.state for h in done.state.histories]


def test_a_task_outliving_the_visibility_timeout_runs_once(cluster, tmp_path):
    # The fixture's visibility timeout is 5 s: Redis hands the message to a
    # second worker while the first is still running it. The heartbeat tells the
    # second copy to stand by instead of running the task again.
    runs_file = tmp_path / "runs"
    execution = start(cluster, f"""
id: long-task
namespace: test
tasks:
  - id: long
    type: io.kestra.plugin.scripts.shell.Commands
    commands: ["echo run >> {runs_file}", "sleep 14"]
  - id: next
    type: io.kestra.plugin.scripts.shell.Commands
    commands: ["echo next >> {runs_file}"]
""")
    done = cluster.store.wait_terminal(execution.id, 120)
    assert done.state.current == State.SUCCESS
    time.sleep(1)
    assert runs_file.read_text().splitlines() == ["run", "next"]
    long = next(r for r in done.task_runs if r.task_id == "long")
    assert len(long.attempts) == 1
