"""Operator actions on executions: kill (KILLING, then KILLED) and restart
(re-run from the failed tasks, keeping what succeeded)."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

from celery import Celery

from harrier.common.celery_app import app as default_app
from harrier.common.concurrency import release_slot
from harrier.common.errors import ExecutionNotFound, HarrierError
from harrier.common.execution import Execution, TaskRun
from harrier.common.settings import Settings
from harrier.common.state import State, now, transition
from harrier.common.store import ExecutionStore
from harrier.common.task import FlowableTask, Task
from harrier.worker.context import WAITING
from harrier.worker.engine import Engine
from harrier.worker.kill_watch import lease_seconds
from harrier.worker.loop_runs import started_iterations
from harrier.worker.pauses import NotPaused, resume
from harrier.worker.rerun import has_failed_tasks, rerun_failed
from harrier.worker.runtime import Runtime
from harrier.worker.subflows import notify_parent
from harrier.worker.tasks.for_each_item import ForEachItem
from harrier.worker.tasks.subflow import Subflow


class ExecutionConflict(HarrierError):
    """The action does not apply to the execution in its current state."""


class NothingToRestart(ExecutionConflict):
    """A restart found no failed task to run again (Kestra answers 422)."""


_WAITING = (State.CREATED, State.RETRYING, State.RESTARTED, State.PAUSED)


def kill_execution(store: ExecutionStore, execution_id: str, *, app: Celery | None = None,
                   settings: Settings | None = None) -> Execution:
    """Ask every worker to stop the execution: running tasks see KILLING within
    a fraction of a second and end KILLED; tasks waiting to start or to be
    retried, and running ones whose worker is gone (no heartbeat), end KILLED
    now; with nothing running, the execution ends at once."""
    state = store.execution_state(execution_id)
    if state.terminated:
        raise ExecutionConflict(f"execution {execution_id} already ended in {state}")
    if state != State.KILLING:
        store.change_execution_state(execution_id, State.KILLING)
    engine = Engine.load(Runtime(settings or Settings(), store, app or default_app),
                         execution_id)
    running = False
    children: list[str] = []
    for run in store.task_runs(execution_id):
        task = _task_of(engine, run)
        if isinstance(task, FlowableTask) and task.runs_executions and \
                not run.state.current.terminated:
            # Kestra 2.0's Loop: its iterations are executions of their own.
            children.extend(started_iterations(store, execution_id, run.id))
        if task is None or isinstance(task, FlowableTask):
            continue  # a flowable ends when its children have
        orphan = run.state.current == State.RUNNING and _silent(
            store, run, lease_seconds(engine.runtime.settings.task_lost_after))
        if run.state.current in _WAITING or WAITING in run.outputs or orphan:
            if run.attempts and not run.attempts[-1].state.current.terminated:
                transition(run.attempts[-1].state, State.KILLED,
                           what=f"attempt of {run.task_id}")
                if orphan:
                    run.attempts[-1].error = "worker lost while running this attempt"
            transition(run.state, State.KILLED, what=f"task {run.task_id}")
            if WAITING in run.outputs and isinstance(task, ForEachItem):
                children.extend(task.child_executions(run.outputs))
            elif WAITING in run.outputs and isinstance(task, Subflow) and \
                    run.outputs.get("executionId"):
                children.append(str(run.outputs["executionId"]))
            engine.task_ended(task, run)
        elif run.state.current == State.RUNNING:
            running = True
    if not running and not store.execution_state(execution_id).terminated:
        # Nothing is running to acknowledge the kill: end it now. Messages still
        # queued find it ended and do nothing.
        for run in store.task_runs(execution_id):
            if run.state.current == State.RUNNING:
                transition(run.state, State.KILLED, what=f"task {run.task_id}")
                store.save_task_run(run)
        if store.change_execution_state(execution_id, State.KILLED, only_from=(State.KILLING,)):
            release_slot(store, engine.runtime.app, execution_id, engine.flow,
                         engine.runtime.flow)
            notify_parent(engine.execution)
    engine.flush()
    for child_id in children:  # Kestra kills the subflow executions a parent waits for
        # It ended meanwhile, or (a ForEachItem killed while starting them) never began.
        with contextlib.suppress(ExecutionConflict, ExecutionNotFound):
            kill_execution(store, child_id, app=app, settings=settings)
    return store.get_execution(execution_id)


def _silent(store: ExecutionStore, run: TaskRun, lease: float) -> bool:
    """A running attempt whose worker stopped beating: nobody will end it."""
    beat = store.last_beat(run.execution_id, run.id)
    return beat is None or (now() - beat).total_seconds() >= lease


def _task_of(engine: Engine, run: TaskRun) -> Task | None:
    try:
        return engine.index.task(run.task_id)
    except KeyError:
        return None


def resume_execution(store: ExecutionStore, app: Celery, execution_id: str,
                     inputs: Mapping[str, Any] | None = None, *,
                     settings: Settings | None = None) -> Execution:
    """Resume a PAUSED execution (Kestra's resume): its Pause tasks end with
    `inputs` checked against their `onResume` inputs (InputError otherwise)."""
    engine = Engine.load(Runtime(settings or Settings(), store, app), execution_id)
    try:
        resume(engine, inputs or {})
    except NotPaused as exc:
        raise ExecutionConflict(str(exc)) from None
    engine.flush()
    return store.get_execution(execution_id)


def restart_execution(store: ExecutionStore, app: Celery, execution_id: str, *,
                      settings: Settings | None = None) -> Execution:
    """Kestra's restart: the failed (or killed) tasks run again, as a new attempt
    of the same task run, inside their flowables reopened; what succeeded is
    kept; the errors and finally tasks run again as the flow's new outcome
    requires; same flow revision."""
    state = store.execution_state(execution_id)
    if not state.terminated:
        raise ExecutionConflict(f"Execution must be terminated to be restarted, current state "
                                f"is '{state}' !")
    engine = Engine.load(Runtime(settings or Settings(), store, app), execution_id)
    if state not in (State.FAILED, State.KILLED) or not has_failed_tasks(engine):
        raise NothingToRestart("No task found to restart execution from!")
    store.change_execution_state(execution_id, State.RESTARTED)
    engine.execution.state.current = State.RESTARTED
    rerun_failed(engine, None)
    engine.flush()
    return store.get_execution(execution_id)
