"""Flow concurrency (`concurrency: {limit, behavior}`) end to end in embedded
mode, and the slot bookkeeping of both implementations (in memory and the
Lua scripts on a real redis-server) held to the same behaviour."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path

import pytest
import redis

from harrier.common.concurrency import ConcurrencySlots, MemorySlots, RedisSlots
from harrier.common.execution import Execution
from harrier.common.flow import parse_flow
from harrier.common.redis_store import RedisStore
from harrier.common.state import State
from harrier.scheduler.executions import create_execution, start_execution
from harrier.worker.runtime import Runtime
from tests.fixtures.redis_server import RedisServer

pytestmark = pytest.mark.timeout(120)


def _flow(flow_id: str, behavior: str, limit: int = 1) -> str:
    return f"""id: {flow_id}
namespace: conc.test
concurrency:
  limit: {limit}
  behavior: {behavior}
tasks:
  - id: nap
    type: io.kestra.plugin.scripts.shell.Commands
    commands: ["sleep 1"]
"""


def _start_three(runtime: Runtime, text: str) -> list[Execution]:
    flow = parse_flow(text, "concurrency.yaml")
    executions = []
    for _ in range(3):
        execution = create_execution(runtime.store, flow, {})
        start_execution(runtime.app, flow, execution, store=runtime.store)
        executions.append(execution)
    return [runtime.store.wait_terminal(e.id, 60) for e in executions]


def _entered(execution: Execution, state: State) -> list:
    return [h.date for h in execution.state.histories if h.state == state]


def test_queue_runs_executions_one_at_a_time_in_order_and_all_succeed(
        embedded: Runtime) -> None:
    done = _start_three(embedded, _flow("queued", "QUEUE"))
    assert [e.state.current for e in done] == [State.SUCCESS] * 3
    assert _entered(done[0], State.QUEUED) == []
    assert all(_entered(e, State.QUEUED) for e in done[1:])
    intervals = [(_entered(e, State.RUNNING)[0], e.state.end_date) for e in done]
    for (_, previous_end), (start, _) in pairwise(intervals):
        assert previous_end is not None and start >= previous_end, intervals


def test_cancel_ends_executions_past_the_limit_cancelled(embedded: Runtime) -> None:
    done = _start_three(embedded, _flow("cancelled", "CANCEL"))
    assert [e.state.current for e in done] == [State.SUCCESS, State.CANCELLED,
                                               State.CANCELLED]
    assert done[1].task_runs == []


def test_fail_ends_executions_past_the_limit_failed_naming_the_limit(
        embedded: Runtime) -> None:
    done = _start_three(embedded, _flow("failing", "FAIL", limit=2))
    assert [e.state.current for e in done] == [State.SUCCESS, State.SUCCESS, State.FAILED]
    assert done[2].error is not None
    assert "concurrency limit of 2" in done[2].error


def test_a_slot_frees_when_the_execution_ends_so_later_ones_run(embedded: Runtime) -> None:
    flow = parse_flow(_flow("sequential", "FAIL"), "concurrency.yaml")
    for _ in range(2):
        execution = create_execution(embedded.store, flow, {})
        start_execution(embedded.app, flow, execution, store=embedded.store)
        assert embedded.store.wait_terminal(execution.id, 60).state.current == State.SUCCESS


@pytest.fixture(params=["memory", "redis"])
def slots(request: pytest.FixtureRequest) -> Iterator[ConcurrencySlots]:
    if request.param == "memory":
        yield MemorySlots()
    else:
        client: redis.Redis = request.getfixturevalue("redis_client")
        yield RedisSlots(client)


def test_slots_admit_up_to_the_limit_then_queue_in_fifo_order(
        slots: ConcurrencySlots) -> None:
    assert slots.admit("ns/f", "a", 2, True) == "RUN"
    assert slots.admit("ns/f", "b", 2, True) == "RUN"
    assert slots.admit("ns/f", "c", 2, True) == "QUEUED"
    assert slots.admit("ns/f", "d", 2, True) == "QUEUED"
    assert slots.admit("ns/f", "a", 2, True) == "RUN"  # admitting twice is harmless
    assert slots.release("ns/f", "a", 2) == ["c"]
    assert slots.release("ns/f", "a", 2) == []  # releasing twice is harmless
    assert slots.running("ns/f") == {"b", "c"}
    assert slots.release("ns/f", "b", 2) == ["d"]


def test_slots_reject_past_the_limit_without_queueing(slots: ConcurrencySlots) -> None:
    assert slots.admit("ns/g", "a", 1, False) == "RUN"
    assert slots.admit("ns/g", "b", 1, False) == "REJECTED"
    assert slots.release("ns/g", "a", 1) == []
    assert slots.admit("ns/g", "b", 1, False) == "RUN"
    assert slots.running("ns/other") == set()


def test_a_queued_newcomer_waits_behind_earlier_queued_ones(slots: ConcurrencySlots) -> None:
    assert slots.admit("ns/h", "a", 1, True) == "RUN"
    assert slots.admit("ns/h", "b", 1, True) == "QUEUED"
    # A slot is free only between release and the queue head taking it: never
    # for a newcomer, who must not jump the queue.
    assert slots.release("ns/h", "a", 1) == ["b"]
    assert slots.admit("ns/h", "c", 1, True) == "QUEUED"


_ENQUEUE_THREE = """
import sys
from harrier.common.celery_app import configure_app
from harrier.common.flow import parse_flow
from harrier.common.redis_store import RedisStore
from harrier.common.settings import Settings
from harrier.scheduler.executions import create_execution, start_execution

settings = Settings.from_env()
store = RedisStore.from_settings(settings)
app = configure_app(settings)
flow = parse_flow(sys.stdin.read(), "concurrency.yaml")
for _ in range(3):
    execution = create_execution(store, flow, {})
    start_execution(app, flow, execution, store=store)
    print(execution.id)
"""


def test_queue_holds_across_a_real_worker_with_redis_slots(
        redis_server: RedisServer, redis_client: redis.Redis, tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "HARRIER_BROKER_URL": redis_server.url, "PYTHONPATH": str(root),
           "HARRIER_WORK_DIR": str(tmp_path)}
    log = (tmp_path / "worker.log").open("wb")
    worker = subprocess.Popen([sys.executable, "-m", "harrier",
                               "worker", "-c", "3", "--pool", "threads"], cwd=root, env=env,
                              stdout=log, stderr=subprocess.STDOUT)
    try:
        enqueued = subprocess.run([sys.executable, "-c", _ENQUEUE_THREE], cwd=root, env=env,
                                  input=_flow("distributed", "QUEUE"), capture_output=True,
                                  text=True, timeout=60)
        assert enqueued.returncode == 0, enqueued.stderr
        store = RedisStore.from_url(redis_server.url)
        done = [store.wait_terminal(i, 60) for i in enqueued.stdout.split()]
    finally:
        worker.terminate()
        worker.wait(30)
        log.close()
    assert [e.state.current for e in done] == [State.SUCCESS] * 3, \
        (tmp_path / "worker.log").read_text()
    intervals = [(_entered(e, State.RUNNING)[0], e.state.end_date) for e in done]
    for (_, previous_end), (start, _) in pairwise(intervals):
        assert previous_end is not None and start >= previous_end, intervals
