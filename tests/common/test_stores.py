"""The ExecutionStore contract, checked against both implementations: the
in-memory store of embedded mode and the Redis store (a real redis-server)."""

from __future__ import annotations

import threading

import pytest

from harrier.common.errors import ExecutionNotFound, FlowNotFound, StoreUnavailable
from harrier.common.execution import Execution, LogEntry, TaskRun, new_id
from harrier.common.memory_store import MemoryStore
from harrier.common.redis_store import RedisStore
from harrier.common.state import State, StateRecord, transition
from harrier.common.store import ExecutionQuery


@pytest.fixture(params=["memory", "redis"])
def store(request, tmp_path):
    if request.param == "memory":
        yield MemoryStore()
        return
    server = request.getfixturevalue("redis_server")
    server.client().flushall()
    made = RedisStore.from_url(server.url)
    yield made
    made.close()


def new_execution(store, flow_id: str = "f") -> Execution:
    execution = Execution(id=new_id(), namespace="ns", flow_id=flow_id, flow_revision=1)
    store.create_execution(execution)
    return execution


def test_flow_revisions_dedupe_and_survive_deletion(store):
    first = store.put_flow("ns", "f", "v1")
    assert store.put_flow("ns", "f", "v1").revision == first.revision == 1
    assert store.put_flow("ns", "f", "v2").revision == 2
    store.delete_flow("ns", "f")
    with pytest.raises(FlowNotFound):
        store.get_flow("ns", "f")
    assert store.get_flow("ns", "f", 1).source == "v1"  # executions pinned to it still run
    assert store.put_flow("ns", "f", "v3").revision == 3
    assert [r.source for r in store.flow_revisions("ns", "f")] == ["v1", "v2", "v3"]


def test_unknown_execution_is_not_found(store):
    with pytest.raises(ExecutionNotFound):
        store.get_execution("nope")


def test_state_changes_append_history_and_respect_only_from(store):
    execution = new_execution(store)
    assert store.change_execution_state(execution.id, State.RUNNING)
    assert not store.change_execution_state(execution.id, State.SUCCESS,
                                            only_from=(State.CREATED,))
    assert store.change_execution_state(execution.id, State.SUCCESS)
    loaded = store.get_execution(execution.id)
    assert [h.state for h in loaded.state.histories] == [
        State.CREATED, State.RUNNING, State.SUCCESS]


def test_a_state_change_saves_its_ended_task_run_in_the_same_step(store):
    # A Pause cancelled at expiry: the execution CANCELLED and its run KILLED
    # together, or neither when the execution is no longer PAUSED.
    execution = new_execution(store)
    store.change_execution_state(execution.id, State.RUNNING)
    store.change_execution_state(execution.id, State.PAUSED)
    run = store.get_or_create_task_run(execution.id, TaskRun(
        id=new_id(), execution_id=execution.id, namespace="ns", flow_id="f",
        task_id="pause", task_path="pause", state=StateRecord.start(State.PAUSED)))
    transition(run.state, State.KILLED)
    assert not store.change_execution_state(execution.id, State.CANCELLED,
                                            only_from=(State.RUNNING,), task_run=run)
    assert store.task_run(execution.id, run.id).state.current == State.PAUSED
    assert store.change_execution_state(execution.id, State.CANCELLED,
                                        only_from=(State.PAUSED,), task_run=run)
    loaded = store.get_execution(execution.id)
    assert loaded.state.current == State.CANCELLED
    assert [r.state.current for r in loaded.task_runs] == [State.KILLED]
    running = store.get_or_create_task_run(execution.id, TaskRun(
        id=new_id(), execution_id=execution.id, namespace="ns", flow_id="f",
        task_id="other", task_path="other", state=StateRecord.start(State.RUNNING)))
    with pytest.raises(ValueError, match="only an ended run"):
        store.change_execution_state(execution.id, State.RUNNING, task_run=running)


def test_task_runs_of_parallel_branches_finishing_together_are_all_kept(store):
    execution = new_execution(store)
    barrier = threading.Barrier(8)

    def branch(index: int) -> None:
        run = store.get_or_create_task_run(execution.id, TaskRun(
            id=new_id(), execution_id=execution.id, namespace="ns", flow_id="f",
            task_id=f"b{index}", task_path=f"b{index}",
            state=StateRecord.start(State.RUNNING)))
        barrier.wait()
        run.state.current = State.SUCCESS
        store.save_task_run(run)

    threads = [threading.Thread(target=branch, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    runs = store.task_runs(execution.id)
    assert sorted(r.task_id for r in runs) == [f"b{i}" for i in range(8)]
    assert {r.state.current for r in runs} == {State.SUCCESS}


def test_get_or_create_task_run_returns_the_first_one(store):
    execution = new_execution(store)
    make = lambda: TaskRun(id=new_id(), execution_id=execution.id, namespace="ns",  # noqa: E731
                           flow_id="f", task_id="t", task_path="t")
    first = store.get_or_create_task_run(execution.id, make())
    again = store.get_or_create_task_run(execution.id, make())
    assert again.id == first.id


def test_concurrent_state_changes_are_serialized(store):
    execution = new_execution(store)
    store.change_execution_state(execution.id, State.RUNNING)
    results = []
    barrier = threading.Barrier(6)

    def finish() -> None:
        barrier.wait()
        results.append(store.change_execution_state(execution.id, State.SUCCESS,
                                                    only_from=(State.RUNNING,)))

    threads = [threading.Thread(target=finish) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results.count(True) == 1
    history = [h.state for h in store.get_execution(execution.id).state.histories]
    assert history.count(State.SUCCESS) == 1


def test_logs_are_ordered_and_readable_after_an_id(store):
    execution = new_execution(store)
    ids = [store.append_log(LogEntry(execution.id, None, "t", "INFO", f"line {i}"))
           for i in range(5)]
    assert [e.message for e in store.read_logs(execution.id)] == [f"line {i}" for i in range(5)]
    assert [e.message for e in store.read_logs(execution.id, ids[2])] == ["line 3", "line 4"]
    assert store.read_logs(execution.id, ids[-1], block=0.05) == []


def test_search_filters_by_flow_and_state(store):
    a, b = new_execution(store, "a"), new_execution(store, "b")
    store.change_execution_state(a.id, State.RUNNING)
    found, total = store.search_executions(ExecutionQuery(namespace="ns", flow_id="a"))
    assert [e.id for e in found] == [a.id] and total == 1
    found, _ = store.search_executions(ExecutionQuery(states=(State.CREATED,)))
    assert [e.id for e in found] == [b.id]


def test_wait_terminal_wakes_on_the_final_state(store):
    execution = new_execution(store)
    store.change_execution_state(execution.id, State.RUNNING)
    timer = threading.Timer(0.2, store.change_execution_state,
                            args=(execution.id, State.SUCCESS))
    timer.start()
    done = store.wait_terminal(execution.id, 10)
    assert done.state.current == State.SUCCESS


def test_redis_store_unreachable_raises_store_unavailable(redis_server):
    store = RedisStore.from_url("redis://127.0.0.1:1/0")
    with pytest.raises(StoreUnavailable, match="unreachable"):
        store.ping()


def test_creating_the_first_task_run_can_start_the_execution_in_the_same_step(store):
    execution = new_execution(store)
    run = store.get_or_create_task_run(execution.id, TaskRun(
        id=new_id(), execution_id=execution.id, namespace="ns", flow_id="f",
        task_id="t", task_path="t"), start_execution=True)
    loaded = store.get_execution(execution.id)
    assert loaded.state.current == State.RUNNING
    assert [h.state for h in loaded.state.histories] == [State.CREATED, State.RUNNING]
    assert [r.id for r in loaded.task_runs] == [run.id]
    assert store.last_beat(execution.id, run.id) is None  # created CREATED: no heartbeat yet


def test_starting_the_execution_with_a_task_run_does_not_undo_a_kill(store):
    execution = new_execution(store)
    store.change_execution_state(execution.id, State.KILLING)
    store.get_or_create_task_run(execution.id, TaskRun(
        id=new_id(), execution_id=execution.id, namespace="ns", flow_id="f",
        task_id="t", task_path="t"), start_execution=True)
    assert store.execution_state(execution.id) == State.KILLING


def test_a_task_run_created_running_records_its_first_heartbeat(store):
    execution = new_execution(store)
    run = store.get_or_create_task_run(execution.id, TaskRun(
        id=new_id(), execution_id=execution.id, namespace="ns", flow_id="f",
        task_id="t", task_path="t", state=StateRecord.start(State.RUNNING)))
    assert store.last_beat(execution.id, run.id) is not None


def _at(store, flow_id: str, minutes_ago: float, labels: dict[str, str] | None = None,
        namespace: str = "ns") -> Execution:
    from datetime import timedelta

    from harrier.common.state import now
    moment = now() - timedelta(minutes=minutes_ago)
    execution = Execution(id=new_id(), namespace=namespace, flow_id=flow_id, flow_revision=1,
                          labels=labels or {}, state=StateRecord.start(State.CREATED, moment))
    store.create_execution(execution)
    return execution


def test_search_pages_newest_first_within_a_time_window(store):
    from datetime import timedelta

    from harrier.common.state import now
    made = [_at(store, "f", minutes) for minutes in (50, 40, 30, 20, 10)]
    found, total = store.search_executions(ExecutionQuery(limit=2, offset=1))
    assert total == 5 and [e.id for e in found] == [made[3].id, made[2].id]
    found, total = store.search_executions(ExecutionQuery(
        start_after=now() - timedelta(minutes=35), start_before=now() - timedelta(minutes=15)))
    assert total == 2 and [e.id for e in found] == [made[3].id, made[2].id]


def test_search_by_state_follows_every_state_change(store):
    first, second, third = (_at(store, "f", minutes) for minutes in (30, 20, 10))
    store.change_execution_state(first.id, State.RUNNING)
    store.change_execution_state(first.id, State.FAILED)
    # The engine's own path to RUNNING: the first task run starts the execution.
    store.get_or_create_task_run(second.id, TaskRun(
        id=new_id(), execution_id=second.id, namespace="ns", flow_id="f", task_id="t",
        task_path="t"), start_execution=True)

    def ids(*states: State, **kwargs) -> tuple[list[str], int]:
        found, total = store.search_executions(ExecutionQuery(states=states, **kwargs))
        return [e.id for e in found], total

    assert ids(State.FAILED) == ([first.id], 1)
    assert ids(State.RUNNING) == ([second.id], 1)
    assert ids(State.CREATED, namespace="ns", flow_id="f") == ([third.id], 1)
    assert ids(State.RUNNING, State.FAILED, State.CREATED, limit=2, offset=1) == (
        [second.id, first.id], 3)
    assert ids(State.SUCCESS) == ([], 0)
    store.change_execution_state(first.id, State.RESTARTED)
    assert ids(State.FAILED) == ([], 0)
    assert ids(State.RESTARTED, namespace="ns") == ([first.id], 1)


def test_search_by_labels_combines_with_the_other_filters(store):
    a = _at(store, "f", 30, {"team": "data", "env": "prod"})
    b = _at(store, "g", 20, {"team": "data", "env": "dev"})
    _at(store, "f", 10, {"team": "web"})
    store.change_execution_state(b.id, State.RUNNING)

    def ids(labels, **kwargs) -> list[str]:
        found, total = store.search_executions(ExecutionQuery(labels=labels, **kwargs))
        assert total == len(found)
        return [e.id for e in found]

    assert ids((("team", "data"),)) == [b.id, a.id]
    assert ids((("team", "data"), ("env", "prod"))) == [a.id]
    assert ids((("team", "data"),), flow_id="g", namespace="ns") == [b.id]
    assert ids((("team", "data"),), states=(State.RUNNING,)) == [b.id]
    assert ids((("team", "nobody"),)) == []


def test_a_deleted_execution_leaves_every_index(store):
    execution = _at(store, "f", 5, {"team": "data"})
    store.change_execution_state(execution.id, State.RUNNING)
    store.change_execution_state(execution.id, State.SUCCESS)
    store.delete_execution(execution.id)
    for query in (ExecutionQuery(), ExecutionQuery(states=(State.SUCCESS,)),
                  ExecutionQuery(labels=(("team", "data"),)),
                  ExecutionQuery(namespace="ns", flow_id="f")):
        assert store.search_executions(query) == ([], 0)


def test_the_last_log_lines_are_read_without_reading_the_whole_log(store):
    execution = new_execution(store)
    ids = [store.append_log(LogEntry(execution.id, None, "t", "INFO", f"line {i}"))
           for i in range(10)]
    assert store.count_logs(execution.id) == 10
    assert [e.message for e in store.read_logs_before(execution.id, limit=3)] == [
        "line 7", "line 8", "line 9"]
    assert [e.message for e in store.read_logs_before(execution.id, ids[7], limit=3)] == [
        "line 4", "line 5", "line 6"]
    assert [e.id for e in store.read_logs_before(execution.id, ids[1])] == [ids[0]]
    assert store.read_logs_before(execution.id, ids[0]) == []
    assert store.read_logs_before("unknown") == [] and store.count_logs("unknown") == 0


def test_search_by_flow_id_alone_finds_it_in_every_namespace(store):
    a = _at(store, "etl", 20, namespace="one")
    b = _at(store, "etl", 10, namespace="two")
    _at(store, "other", 5, namespace="one")
    store.change_execution_state(b.id, State.RUNNING)
    found, total = store.search_executions(ExecutionQuery(flow_id="etl"))
    assert [e.id for e in found] == [b.id, a.id] and total == 2
    found, total = store.search_executions(ExecutionQuery(flow_id="etl",
                                                          states=(State.RUNNING,)))
    assert [e.id for e in found] == [b.id] and total == 1


def test_search_by_state_follows_the_engine_from_first_task_to_the_end(store):
    from harrier.common.store import BlockRef

    execution = _at(store, "f", 1)
    run = TaskRun(id=new_id(), execution_id=execution.id, namespace="ns", flow_id="f",
                  task_id="t", task_path="t", state=StateRecord.start(State.RUNNING))
    run, _, _ = store.begin_task_run(execution.id, run)

    def states_found(state: State) -> list[str]:
        return [e.id for e in store.search_executions(ExecutionQuery(states=(state,)))[0]]

    assert states_found(State.RUNNING) == [execution.id]
    block = BlockRef(execution.id, "", "tasks")
    store.start_block(block, 1, 1)
    transition(run.state, State.SUCCESS)
    store.end_task_run(run, block, may_continue=True, finish=True)
    assert store.execution_state(execution.id) == State.SUCCESS
    assert states_found(State.RUNNING) == [] and states_found(State.SUCCESS) == [execution.id]
