"""The engine on a real in-memory store: the end of the last task ends the
execution, never over a kill that came while that task ran."""

from __future__ import annotations

from harrier.common.celery_app import app
from harrier.common.execution import Execution, TaskRun, new_id
from harrier.common.memory_store import MemoryStore
from harrier.common.settings import Settings
from harrier.common.state import State, StateRecord, transition
from harrier.common.store import BlockRef
from harrier.worker.engine import Engine
from harrier.worker.runtime import Runtime

FLOW = """
id: plain
namespace: ns
tasks:
  - {id: t, type: io.kestra.plugin.core.log.Log, message: hi}
"""


def running_last_task(tmp_path) -> tuple[Engine, TaskRun]:
    """An execution whose only task runs, as the worker that runs it sees it."""
    store = MemoryStore()
    runtime = Runtime(Settings(work_root=tmp_path), store, app)
    store.put_flow("ns", "plain", FLOW)
    execution = Execution(id=new_id(), namespace="ns", flow_id="plain", flow_revision=1)
    store.create_execution(execution)
    store.start_block(BlockRef(execution.id, "", "tasks"), 1, 1)
    state = StateRecord.start(State.CREATED)
    transition(state, State.RUNNING)
    run, created, head = store.begin_task_run(execution.id, TaskRun(
        id=new_id(), execution_id=execution.id, namespace="ns", flow_id="plain",
        task_id="t", task_path="t", state=state))
    assert created and head.state.current == State.RUNNING
    return Engine(runtime, head, runtime.flow("ns", "plain", 1)), run


def test_the_end_of_the_last_task_ends_the_execution(tmp_path):
    engine, run = running_last_task(tmp_path)
    transition(run.state, State.SUCCESS)
    engine.task_ended(engine.index.task("t"), run)
    assert engine.store.execution_state(run.execution_id) == State.SUCCESS


def test_a_kill_during_the_last_task_still_ends_killed(tmp_path):
    engine, run = running_last_task(tmp_path)
    engine.store.change_execution_state(run.execution_id, State.KILLING)
    transition(run.state, State.SUCCESS)  # the task finished before it saw the kill
    engine.task_ended(engine.index.task("t"), run)
    assert engine.store.execution_state(run.execution_id) == State.KILLED


def test_a_task_run_ends_once_however_many_deliveries_report_it(tmp_path):
    engine, run = running_last_task(tmp_path)
    transition(run.state, State.SUCCESS)
    block = BlockRef(run.execution_id, "", "tasks")
    assert engine.store.end_task_run(run, block, may_continue=True) is not None
    assert engine.store.end_task_run(run, block, may_continue=True) is None
    progress = engine.store.block_progress(block)
    assert progress is not None and progress.ended == 1 and progress.done
