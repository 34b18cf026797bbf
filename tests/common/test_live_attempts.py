"""The Redis store's index of live attempts, which scheduler replicas read to
find task runs whose worker died: what enters it, what leaves it, and one
claim per lost run however many replicas race for it (real redis-server)."""

from __future__ import annotations

import threading
import time

import pytest

from harrier.common.execution import WAITING, Attempt, Execution, TaskRun, new_id
from harrier.common.redis_store import RedisStore
from harrier.common.state import State, StateRecord, transition
from harrier.common.store import BlockRef


@pytest.fixture
def store(redis_server):
    if not redis_server.running:
        redis_server.start()
    redis_server.client().flushall()
    made = RedisStore.from_url(redis_server.url)
    yield made
    made.close()


def begin(store: RedisStore, task_id: str = "t", *, attempts: bool = True
          ) -> tuple[Execution, TaskRun]:
    execution = Execution(id=new_id(), namespace="ns", flow_id="f", flow_revision=1)
    store.create_execution(execution)
    run = TaskRun(id=new_id(), execution_id=execution.id, namespace="ns", flow_id="f",
                  task_id=task_id, task_path=task_id, state=StateRecord.start(State.RUNNING),
                  attempts=[Attempt()] if attempts else [])
    run, _, _ = store.begin_task_run(execution.id, run)
    return execution, run


def silent(store: RedisStore) -> set[str]:
    return {run_id for _, run_id in store.silent_task_runs(time.time() + 1)}


def test_a_running_attempt_is_live_until_its_run_ends(store):
    execution, run = begin(store)
    assert silent(store) == {run.id}
    block = BlockRef(execution.id, "", "tasks")
    store.start_block(block, 1, 1)
    transition(run.attempts[-1].state, State.SUCCESS)
    transition(run.state, State.SUCCESS)
    store.end_task_run(run, block, may_continue=True)
    assert silent(store) == set()
    store.beat(execution.id, run.id)  # a late beat does not bring it back
    assert silent(store) == set()


def test_flowables_and_waiting_runs_expect_no_heartbeat(store):
    begin(store, "parallel", attempts=False)
    _, paused = begin(store, "pause")
    paused.outputs[WAITING] = "paused"
    store.save_task_run(paused)
    assert silent(store) == set()


def test_exactly_one_replica_claims_a_lost_run(store):
    execution, run = begin(store)
    before = time.time() + 1  # its last beat is older than this
    wins: list[object] = []
    barrier = threading.Barrier(8)

    def claim() -> None:
        barrier.wait()
        found = store.claim_lost_task_run(execution.id, run.id, before=before,
                                          hold_until=before + 300)
        if found is not None:
            wins.append(found)

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    [(state, claimed)] = wins
    assert state == State.RUNNING and claimed.id == run.id
    assert silent(store) == set()  # held for its re-run
    assert {r for _, r in store.silent_task_runs(before + 301)} == {run.id}


def test_a_run_of_a_deleted_execution_is_not_claimed_and_leaves_the_index(store):
    execution, run = begin(store)
    store.redis.delete(store._k("exec", execution.id))  # expired by retention
    assert store.claim_lost_task_run(execution.id, run.id, before=time.time() + 1,
                                     hold_until=time.time() + 300) is None
    assert silent(store) == set()
