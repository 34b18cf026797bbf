"""Brokers and faults with real servers: RabbitMQ as the broker, and a Redis
that goes away in the middle of an execution and comes back."""

from __future__ import annotations

import time

import pytest

from harrier.common.celery_app import app
from harrier.common.flow import parse_flow
from harrier.common.redis_store import RedisStore
from harrier.common.state import State
from harrier.scheduler.executions import create_execution, start_execution
from tests.fixtures.redis_server import RedisServer
from tests.fixtures.workers import make_cluster

pytestmark = pytest.mark.slow

FLOW = """
id: outage
namespace: test
tasks:
  - id: before
    type: io.kestra.plugin.scripts.shell.Commands
    commands: ["sleep 2", "echo before"]
  - id: fan
    type: io.kestra.plugin.core.flow.Parallel
    tasks:
      - {id: a, type: io.kestra.plugin.scripts.shell.Commands, commands: ["echo a"]}
      - {id: b, type: io.kestra.plugin.scripts.shell.Commands, commands: ["echo b"]}
  - id: after
    type: io.kestra.plugin.scripts.shell.Commands
    commands: ["echo after"]
"""


def run(store, text: str, timeout: float = 90):
    flow = parse_flow(text, "test.yaml")
    execution = create_execution(store, flow, {})
    start_execution(app, flow, execution, store=store)
    return execution, store.wait_terminal(execution.id, timeout)


def test_rabbitmq_works_as_the_broker(rabbitmq_server, redis_server, tmp_path):
    redis_server.client().flushall()
    cluster = make_cluster(rabbitmq_server.url, redis_server.url, tmp_path)
    try:
        cluster.start_worker("rabbit")
        _, done = run(cluster.store, FLOW)
        assert done.state.current == State.SUCCESS
        assert {r.task_id for r in done.task_runs} == {"before", "fan", "a", "b", "after"}
    finally:
        cluster.stop_all()


def test_workers_carry_on_when_redis_restarts_mid_execution(tmp_path):
    server = RedisServer(tmp_path / "redis", persistent=True)
    (tmp_path / "redis").mkdir()
    server.start()
    cluster = make_cluster(server.url, server.url, tmp_path)
    try:
        cluster.start_worker("patient")
        store = RedisStore.from_url(server.url, patience=60)
        flow = parse_flow(FLOW, "test.yaml")
        execution = create_execution(store, flow, {})
        start_execution(app, flow, execution, store=store)
        deadline = time.monotonic() + 30
        while not any(r.state.current == State.RUNNING for r in store.task_runs(execution.id)):
            assert time.monotonic() < deadline, "the first task never started"
            time.sleep(0.05)
        server.stop()  # while `before` is running: its end cannot be recorded yet
        time.sleep(4)
        server.start()
        done = store.wait_terminal(execution.id, 120)
        assert done.state.current == State.SUCCESS, [
            (r.task_id, r.state.current, r.error) for r in done.task_runs]
        assert {r.task_id for r in done.task_runs} == {"before", "fan", "a", "b", "after"}
    finally:
        cluster.stop_all()
        server.stop()


def test_an_outage_longer_than_the_workers_patience_loses_no_execution(tmp_path):
    # The workers wait 2 s for the store (HARRIER_STORE_PATIENCE) and Redis stays
    # down 6 s: the task ends while nothing can record it, and its worker gives
    # up. Once Redis is back a scheduler sees the attempt's heartbeats stopped
    # and runs the task again, so the execution ends, with the lost attempt shown.
    # It trusts the silence once Redis has been up HARRIER_TASK_LOST_AFTER: 6 s
    # here, not the default 15 s.
    server = RedisServer(tmp_path / "redis", persistent=True)
    (tmp_path / "redis").mkdir()
    server.start()
    cluster = make_cluster(server.url, server.url, tmp_path, HARRIER_STORE_PATIENCE="2",
                           HARRIER_TASK_LOST_AFTER="6")
    try:
        cluster.start_worker("impatient")
        cluster.start_scheduler("rescuer")
        store = RedisStore.from_url(server.url, patience=60)
        flow = parse_flow("""
id: long-outage
namespace: test
tasks:
  - id: before
    type: io.kestra.plugin.scripts.shell.Commands
    commands: ["sleep 2", "echo before"]
  - id: after
    type: io.kestra.plugin.scripts.shell.Commands
    commands: ["echo after"]
""", "test.yaml")
        execution = create_execution(store, flow, {})
        start_execution(app, flow, execution, store=store)
        deadline = time.monotonic() + 30
        while not any(r.state.current == State.RUNNING for r in store.task_runs(execution.id)):
            assert time.monotonic() < deadline, "the first task never started"
            time.sleep(0.05)
        server.stop()
        time.sleep(6)
        server.start()
        done = store.wait_terminal(execution.id, 120)
        assert done.state.current == State.SUCCESS, [
            (r.task_id, r.state.current, r.error) for r in done.task_runs]
        before = next(r for r in done.task_runs if r.task_id == "before")
        assert [a.state.current for a in before.attempts] == [State.FAILED, State.SUCCESS]
        assert before.attempts[0].error == "worker lost while running this attempt"
    finally:
        cluster.stop_all()
        server.stop()
