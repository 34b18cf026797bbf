"""Pause (io.kestra.plugin.core.flow.Pause) and resume, in embedded mode and
on a real Redis with real worker processes: a paused execution waits with no
worker slot, resumes with typed onResume inputs, or ends per `behavior` when
`pauseDuration` passes; and a pause survives a restart of every process,
resumed through the HTTP API afterwards."""

from __future__ import annotations

import re
import signal
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click
import httpx
import pytest
from click.testing import CliRunner

from harrier.cli.executions import executions_group
from harrier.common.celery_app import app  # configured by make_cluster
from harrier.common.errors import FlowValidationError, InputError
from harrier.common.flow import parse_flow
from harrier.common.launch import create_execution, start_execution
from harrier.common.state import State
from harrier.scheduler.control import ExecutionConflict, kill_execution, resume_execution
from harrier.scheduler.pause_sweep import PauseSweep
from tests.fixtures.api_server import PASSWORD, USER, ApiServer, start_scheduler, stop, wait_healthy
from tests.fixtures.modes import Harrier
from tests.fixtures.redis_server import RedisServer, free_port
from tests.fixtures.workers import make_cluster
from tests.integration.embedded import task_run, wait_for
from tests.integration.modes import Runner

APPROVAL = """
id: approval
namespace: team
tasks:
  - id: before
    type: io.kestra.plugin.core.debug.Return
    format: ready
  - id: wait_for_approval
    type: io.kestra.plugin.core.flow.Pause
    onResume:
      - id: approved
        type: BOOLEAN
        defaults: false
      - id: reason
        type: STRING
  - id: after
    type: io.kestra.plugin.core.debug.Return
    format: >-
      {{ outputs.wait_for_approval.onResume.approved }}/{{
      outputs.wait_for_approval.onResume.reason }}
"""


def _paused(harrier: Harrier, execution_id: str) -> None:
    wait_for(lambda: harrier.store.execution_state(execution_id) == State.PAUSED)


def test_pause_waits_then_resumes_with_typed_inputs(harrier: Harrier) -> None:
    execution = harrier.start(APPROVAL)
    _paused(harrier, execution.id)
    runs = {r.task_id: r for r in harrier.store.task_runs(execution.id)}
    assert runs["wait_for_approval"].state.current == State.PAUSED
    assert "after" not in runs
    with pytest.raises(InputError, match="reason"):  # required, not given: nothing changes
        resume_execution(harrier.store, harrier.app, execution.id, {"approved": "true"})
    assert harrier.store.execution_state(execution.id) == State.PAUSED
    resume_execution(harrier.store, harrier.app, execution.id,
                     {"approved": "true", "reason": "fine"}, settings=harrier.settings)
    done = harrier.store.wait_terminal(execution.id, 90)
    assert done.state.current == State.SUCCESS, done.error
    assert task_run(done, "wait_for_approval").outputs["onResume"] == \
        {"approved": True, "reason": "fine"}
    assert task_run(done, "after").outputs["value"] == "true/fine"
    with pytest.raises(ExecutionConflict, match="not paused"):
        resume_execution(harrier.store, harrier.app, execution.id, {})


@pytest.mark.parametrize(("behavior", "task_state", "final"), [
    ("RESUME", State.SUCCESS, State.SUCCESS), ("WARN", State.WARNING, State.WARNING),
    ("FAIL", State.FAILED, State.FAILED), ("CANCEL", State.KILLED, State.CANCELLED)])
def test_pause_duration_ends_the_pause_per_behavior(harrier: Harrier, behavior: str,
                                                    task_state: State, final: State) -> None:
    done = harrier.run(f"""
id: timed_{behavior.lower()}
namespace: team
tasks:
  - id: pause
    type: io.kestra.plugin.core.flow.Pause
    pauseDuration: PT1S
    behavior: {behavior}
  - id: after
    type: io.kestra.plugin.core.log.Log
    message: went on
""")
    assert done.state.current == final, done.error
    # Seen as soon as the execution ends: for CANCEL, the execution is cancelled
    # and the Pause's run saved KILLED in one step.
    assert task_run(done, "pause").state.current == task_state
    ran_after = any(r.task_id == "after" for r in done.task_runs)
    assert ran_after == (behavior in ("RESUME", "WARN"))


class _WorkerDied(Exception):
    """Injected: the worker process dies at this point."""


def test_a_worker_dying_just_after_a_pause_cancels_its_execution_leaves_no_running_pause(
        embedded: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # Embedded only: the crash is injected into the in-process worker's store.
    # A crash cannot be timed between two store writes from outside: the store
    # fails every write that follows the execution's change to CANCELLED.
    runner = Runner("embedded", runtime=embedded)
    store = runner.store
    died = threading.Event()
    change_state = store.change_execution_state

    def cancel_then_die(execution_id: str, new: State, **options: Any) -> bool:
        if died.is_set():
            raise _WorkerDied(new)
        changed = change_state(execution_id, new, **options)
        if changed and new == State.CANCELLED:
            died.set()
        return changed

    def dead(name: str) -> Callable[..., Any]:
        write = getattr(store, name)

        def maybe(*args: Any, **kwargs: Any) -> Any:
            if died.is_set():
                raise _WorkerDied(name)
            return write(*args, **kwargs)
        return maybe

    monkeypatch.setattr(store, "change_execution_state", cancel_then_die)
    for name in ("save_task_run", "append_log", "end_task_run", "set_execution_outputs"):
        monkeypatch.setattr(store, name, dead(name))
    execution = runner.start("""
id: cancelled_then_crash
namespace: team
tasks:
  - id: pause
    type: io.kestra.plugin.core.flow.Pause
    pauseDuration: PT0.2S
    behavior: CANCEL
""")
    assert died.wait(30)
    monkeypatch.undo()
    done = store.get_execution(execution.id)
    assert done.state.current == State.CANCELLED
    assert task_run(done, "pause").state.current == State.KILLED


def test_delay_is_pause_duration_and_a_timeout_alone_fails_the_pause(harrier: Harrier) -> None:
    done = harrier.run("""
id: deprecated_delay
namespace: team
tasks:
  - id: old_name
    type: io.kestra.plugin.core.flow.Pause
    delay: PT0.5S
    behavior: WARN
  - id: timed_out
    type: io.kestra.plugin.core.flow.Pause
    timeout: PT0.5S
    allowFailure: true
  - id: both
    type: io.kestra.plugin.core.flow.Pause
    pauseDuration: PT0.5S
    timeout: PT0.2S
  - id: after
    type: io.kestra.plugin.core.log.Log
    message: went on
""")
    # delay behaves as pauseDuration (its behavior applies); a timeout with no
    # pauseDuration fails the Pause (allowFailure: WARNING, the flow goes on);
    # pauseDuration wins over timeout.
    assert task_run(done, "old_name").state.current == State.WARNING
    timed_out = task_run(done, "timed_out")
    assert timed_out.state.current == State.WARNING
    assert "timed out after" in (timed_out.error or "")
    assert task_run(done, "both").state.current == State.SUCCESS
    assert task_run(done, "after").state.current == State.SUCCESS
    assert done.state.current == State.WARNING, done.error


def test_a_pause_timeout_fails_the_execution_without_allow_failure(harrier: Harrier) -> None:
    done = harrier.run("""
id: pause_timeout
namespace: team
tasks:
  - id: approve
    type: io.kestra.plugin.core.flow.Pause
    timeout: PT0.5S
  - id: after
    type: io.kestra.plugin.core.log.Log
    message: never
""")
    assert done.state.current == State.FAILED
    assert task_run(done, "approve").state.current == State.FAILED
    assert not any(r.task_id == "after" for r in done.task_runs)


@pytest.mark.parametrize(("extra", "message"), [
    ("    delay: PT1M\n    pauseDuration: PT1M\n", "give only pauseDuration"),
    ("    tasks: [{id: x, type: io.kestra.plugin.core.log.Log, message: hi}]\n",
     "Pause `tasks` is not supported yet")])
def test_delay_with_pause_duration_and_pause_tasks_are_refused(extra: str, message: str) -> None:
    with pytest.raises(FlowValidationError, match=re.escape(message)):
        parse_flow("id: f\nnamespace: n\ntasks:\n  - id: p\n"
                   "    type: io.kestra.plugin.core.flow.Pause\n" + extra, "f.yaml")


def test_resume_task_resumes_another_execution(harrier: Harrier) -> None:
    paused = harrier.start(APPROVAL)
    _paused(harrier, paused.id)
    resumer = harrier.run("""
id: resumer
namespace: other
inputs:
  - id: target
    type: STRING
tasks:
  - id: wrong_flow
    type: io.kestra.plugin.core.execution.Resume
    executionId: "{{ inputs.target }}"
    namespace: team
    flowId: not_approval
    allowFailure: true
  - id: go
    type: io.kestra.plugin.core.execution.Resume
    executionId: "{{ inputs.target }}"
    namespace: team
    flowId: approval
    inputs:
      approved: true
      reason: "{{ flow.id }}"
""", {"target": paused.id})
    assert resumer.state.current == State.WARNING
    assert "not of flowId" in (task_run(resumer, "wrong_flow").error or "")
    done = harrier.store.wait_terminal(paused.id, 90)
    assert done.state.current == State.SUCCESS, done.error
    assert task_run(done, "after").outputs["value"] == "true/resumer"


def test_killing_a_paused_execution(harrier: Harrier) -> None:
    execution = harrier.start(APPROVAL)
    _paused(harrier, execution.id)
    kill_execution(harrier.store, execution.id, app=harrier.app, settings=harrier.settings)
    done = harrier.store.wait_terminal(execution.id, 60)
    assert done.state.current == State.KILLED
    assert task_run(done, "wait_for_approval").state.current == State.KILLED


@pytest.mark.slow
def test_a_pause_survives_a_restart_of_every_process_and_resumes_through_the_api(
        redis_server: RedisServer, tmp_path: Path) -> None:
    if not redis_server.running:
        redis_server.start()
    redis_server.client().flushall()
    cluster = make_cluster(redis_server.url, redis_server.url, tmp_path)
    port = free_port()
    api_env = {**cluster.env, "HARRIER_API_HOST": "127.0.0.1", "HARRIER_API_PORT": str(port),
               "HARRIER_API_USERNAME": USER, "HARRIER_API_PASSWORD": PASSWORD,
               "HARRIER_FLOWS_DIR": str(tmp_path / "flows")}
    (tmp_path / "flows").mkdir()
    api = ApiServer(f"http://127.0.0.1:{port}", start_scheduler(api_env, tmp_path / "api1.log"),
                    tmp_path / "api1.log")
    try:
        wait_healthy(api)
        worker = cluster.start_worker("first", concurrency=1)
        flow = parse_flow(APPROVAL, "approval.yaml")
        execution = create_execution(cluster.store, flow, {})
        start_execution(app, flow, execution, store=cluster.store)
        wait_for(lambda: cluster.store.execution_state(execution.id) == State.PAUSED, 90)
        # The pause holds no slot: the single worker slot runs another flow meanwhile.
        other = parse_flow("id: other\nnamespace: team\ntasks:\n  - id: t\n"
                           "    type: io.kestra.plugin.core.log.Log\n    message: hi\n", "o.yaml")
        second = create_execution(cluster.store, other, {})
        start_execution(app, other, second, store=cluster.store)
        assert cluster.store.wait_terminal(second.id, 90).state.current == State.SUCCESS

        cluster.kill(worker, signal.SIGTERM)
        stop(api.process)
        cluster.workers.clear()

        cluster.start_worker("second", concurrency=1)
        api = ApiServer(api.url, start_scheduler(api_env, tmp_path / "api2.log"),
                        tmp_path / "api2.log")
        wait_healthy(api)
        with httpx.Client(base_url=api.url, auth=api.auth, timeout=30) as client:
            shown = client.get(f"/api/v1/executions/{execution.id}").json()
            assert shown["state"]["current"] == "PAUSED"
            answer = client.post(f"/api/v1/executions/{execution.id}/resume",
                                 files={"approved": (None, "true"), "reason": (None, "ok")})
            assert answer.status_code == 200, answer.text
            again = client.post(f"/api/v1/executions/{execution.id}/resume", json={})
            assert again.status_code == 409, again.text  # resumed already
        done = cluster.store.wait_terminal(execution.id, 90)
        assert done.state.current == State.SUCCESS, done.error
        assert task_run(done, "after").outputs["value"] == "true/ok"
    finally:
        stop(api.process)
        cluster.stop_all()


@pytest.mark.slow
def test_pause_duration_expires_after_the_worker_holding_it_is_replaced(
        redis_server: RedisServer, tmp_path: Path) -> None:
    """The expiry is a broker message with a countdown: a worker that stops
    while holding it gives it back, and the next worker ends the pause."""
    if not redis_server.running:
        redis_server.start()
    redis_server.client().flushall()
    cluster = make_cluster(redis_server.url, redis_server.url, tmp_path, visibility_timeout=5)
    try:
        worker = cluster.start_worker("first", concurrency=1)
        flow = parse_flow("""
id: timed
namespace: team
tasks:
  - id: pause
    type: io.kestra.plugin.core.flow.Pause
    pauseDuration: PT4S
    behavior: WARN
""", "timed.yaml")
        execution = create_execution(cluster.store, flow, {})
        start_execution(app, flow, execution, store=cluster.store)
        wait_for(lambda: cluster.store.execution_state(execution.id) == State.PAUSED, 90)
        # Its countdown message is held, unacknowledged, by the worker.
        wait_for(lambda: redis_server.client().hlen("unacked") > 0)
        cluster.kill(worker, signal.SIGKILL)  # dies holding the countdown message
        cluster.workers.clear()
        cluster.start_worker("second", concurrency=1)
        done = cluster.store.wait_terminal(execution.id, 120)
        assert done.state.current == State.WARNING
        assert task_run(done, "pause").state.current == State.WARNING
    finally:
        cluster.stop_all()


@pytest.mark.slow
def test_an_overdue_pause_whose_expiry_message_was_lost_is_ended_by_the_sweep(
        redis_server: RedisServer, tmp_path: Path) -> None:
    """The broker losing the countdown message is a fault Redis does not
    produce on demand: the test deletes it (the worker holding it is killed
    first), then runs the scheduler's sweep with a clock past the due time."""
    if not redis_server.running:
        redis_server.start()
    client = redis_server.client()
    client.flushall()
    cluster = make_cluster(redis_server.url, redis_server.url, tmp_path)
    try:
        worker = cluster.start_worker("first", concurrency=1)
        flow = parse_flow("""
id: long_pause
namespace: team
tasks:
  - id: pause
    type: io.kestra.plugin.core.flow.Pause
    pauseDuration: PT1H
    behavior: FAIL
""", "long.yaml")
        execution = create_execution(cluster.store, flow, {})
        start_execution(app, flow, execution, store=cluster.store)
        wait_for(lambda: cluster.store.execution_state(execution.id) == State.PAUSED, 90)
        wait_for(lambda: client.hlen("unacked") > 0)
        cluster.kill(worker, signal.SIGKILL)
        cluster.workers.clear()
        client.delete("unacked", "unacked_index")  # the lost countdown message
        cluster.start_worker("second", concurrency=1)
        sweep = PauseSweep(cluster.store, app, cluster.settings)
        assert sweep.sweep() == []  # not due yet
        later = datetime.now(UTC) + timedelta(hours=1, minutes=1)
        assert len(sweep.sweep(now=later)) == 1
        done = cluster.store.wait_terminal(execution.id, 90)
        assert done.state.current == State.FAILED
        assert "pause duration expired" in (task_run(done, "pause").error or "")
    finally:
        cluster.stop_all()


@pytest.mark.slow
def test_harrier_executions_resume_on_the_command_line(redis_server: RedisServer,
                                                       tmp_path: Path) -> None:
    if not redis_server.running:
        redis_server.start()
    redis_server.client().flushall()
    cluster = make_cluster(redis_server.url, redis_server.url, tmp_path)
    try:
        cluster.start_worker("only", concurrency=1)
        flow = parse_flow(APPROVAL, "approval.yaml")
        execution = create_execution(cluster.store, flow, {})
        start_execution(app, flow, execution, store=cluster.store)
        wait_for(lambda: cluster.store.execution_state(execution.id) == State.PAUSED, 90)

        @click.group()
        def harrier() -> None:
            """`harrier executions` as the CLI registers it."""

        harrier.add_command(executions_group)
        env = {"HARRIER_BROKER_URL": redis_server.url, "HARRIER_STORE_URL": "",
               "HARRIER_WORK_DIR": str(tmp_path)}
        bad = CliRunner().invoke(harrier, ["executions", "resume", execution.id,
                                           "--input", "approved=maybe"], env=env)
        assert bad.exit_code == 1 and "approved" in bad.output
        good = CliRunner().invoke(harrier, ["executions", "resume", execution.id, "-i",
                                            "approved=true", "-i", "reason=cli"], env=env)
        assert good.exit_code == 0, good.output
        done = cluster.store.wait_terminal(execution.id, 90)
        assert done.state.current == State.SUCCESS
        assert task_run(done, "after").outputs["value"] == "true/cli"
    finally:
        cluster.stop_all()
