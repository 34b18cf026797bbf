"""Operator actions on executions: kill (KILLING, then KILLED) and restart
(re-run from the failed tasks, keeping what succeeded)."""

from __future__ import annotations

from celery import Celery

from harrier.common.canvas import compile_flow
from harrier.common.errors import HarrierError
from harrier.common.execution import Execution
from harrier.common.flow import parse_flow
from harrier.common.state import State, transition
from harrier.common.store import ExecutionStore


class ExecutionConflict(HarrierError):
    """The action does not apply to the execution in its current state."""


def kill_execution(store: ExecutionStore, execution_id: str) -> Execution:
    """Ask every worker to stop the execution: running tasks see KILLING within
    a fraction of a second and terminate their process groups; queued and
    retrying tasks are marked KILLED now and skip when they are delivered."""
    state = store.execution_state(execution_id)
    if state.terminated:
        raise ExecutionConflict(f"execution {execution_id} already ended in {state}")
    if state != State.KILLING:
        store.change_execution_state(execution_id, State.KILLING)
    running = False
    for run in store.task_runs(execution_id):
        if run.state.current in (State.CREATED, State.RETRYING):
            transition(run.state, State.KILLED, what=f"task {run.task_id}")
            store.save_task_run(run)
        elif run.state.current == State.RUNNING and not _is_flowable_parent(run, store,
                                                                           execution_id):
            running = True
    if not running:
        # Nothing is running to acknowledge the kill: end it now. The rest of the
        # canvas still flows through the workers and skips every task.
        store.change_execution_state(execution_id, State.KILLED, only_from=(State.KILLING,))
        for run in store.task_runs(execution_id):
            if run.state.current == State.RUNNING:
                transition(run.state, State.KILLED, what=f"task {run.task_id}")
                store.save_task_run(run)
    return store.get_execution(execution_id)


def _is_flowable_parent(run: object, store: ExecutionStore, execution_id: str) -> bool:
    # A Parallel/If task run stays RUNNING while its children run; it does not
    # run anything itself.
    runs = store.task_runs(execution_id)
    return any(child.parent_task_run_id == getattr(run, "id", None) for child in runs)


def restart_execution(store: ExecutionStore, app: Celery, execution_id: str) -> Execution:
    """Kestra's restart: the failed (or killed) task runs and their flowable
    parents run again, successful ones are kept; same flow revision."""
    execution = store.get_execution(execution_id)
    if execution.state.current not in (State.FAILED, State.KILLED):
        raise ExecutionConflict(f"only a FAILED or KILLED execution can be restarted; "
                                f"{execution_id} is {execution.state.current}")
    record = store.get_flow(execution.namespace, execution.flow_id, execution.flow_revision)
    flow = parse_flow(record.source, f"{execution.namespace}.{execution.flow_id}")
    error_phase = {t.id for t in flow.errors} | {t.id for t in flow.finally_}
    redo = {r.id for r in execution.task_runs
            if r.state.current in (State.FAILED, State.KILLED, State.RETRYING,
                                   State.RUNNING, State.CREATED)
            or r.task_id in error_phase}
    # Parents of a re-run task are closed again by the canvas, so they re-open too.
    by_id = {r.id: r for r in execution.task_runs}
    for run_id in list(redo):
        parent = by_id[run_id].parent_task_run_id
        while parent is not None and parent in by_id:
            redo.add(parent)
            parent = by_id[parent].parent_task_run_id
    store.reset_task_runs(execution_id, sorted(redo))
    store.change_execution_state(execution_id, State.RESTARTED)
    compile_flow(flow, execution_id).apply_async()
    return store.get_execution(execution_id)
