"""Finishing an execution from the last task's snapshot: only the plain case,
and never over a kill that arrived while the last task ran."""

from __future__ import annotations

from harrier.common.celery_app import app
from harrier.common.execution import Execution, TaskRun, new_id
from harrier.common.memory_store import MemoryStore
from harrier.common.settings import Settings
from harrier.common.state import State, StateRecord
from harrier.worker.finish import finalize, finalize_known
from harrier.worker.runtime import Runtime

FLOW = """
id: plain
namespace: ns
tasks:
  - {id: t, type: io.kestra.plugin.core.log.Log, message: hi}
"""


def ran_last_task(store: MemoryStore) -> Execution:
    """An execution whose only task has just succeeded, as the worker saw it."""
    store.put_flow("ns", "plain", FLOW)
    execution = Execution(id=new_id(), namespace="ns", flow_id="plain", flow_revision=1)
    store.create_execution(execution)
    store.change_execution_state(execution.id, State.RUNNING)
    run = TaskRun(id=new_id(), execution_id=execution.id, namespace="ns", flow_id="plain",
                  task_id="t", task_path="t", state=StateRecord.start(State.SUCCESS))
    store.save_task_run(run)
    execution.task_runs = [run]
    return execution


def test_the_last_task_finishes_a_plain_execution_from_its_snapshot(tmp_path):
    store = MemoryStore()
    runtime = Runtime(Settings.from_env({"HARRIER_WORK_ROOT": str(tmp_path)}), store, app)
    snapshot = ran_last_task(store)
    assert finalize_known(runtime, snapshot, "main") == State.SUCCESS
    assert store.execution_state(snapshot.id) == State.SUCCESS


def test_a_kill_during_the_last_task_still_ends_killed(tmp_path):
    store = MemoryStore()
    runtime = Runtime(Settings.from_env({"HARRIER_WORK_ROOT": str(tmp_path)}), store, app)
    snapshot = ran_last_task(store)
    store.change_execution_state(snapshot.id, State.KILLING)
    assert finalize_known(runtime, snapshot, "main") is None  # the snapshot is stale
    assert store.execution_state(snapshot.id) == State.KILLING
    assert finalize(runtime, store.get_execution(snapshot.id)) == State.KILLED
