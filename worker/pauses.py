"""Ending a paused execution's Pause: resumed (by the API or the CLI, with
its `onResume` inputs) or expired (`pauseDuration` passed; `behavior` says how
it ends). The execution's PAUSED -> RUNNING (or CANCELLED) compare-and-set
decides which of the two comes first."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any, Protocol, runtime_checkable

from harrier.common.concurrency import release_slot
from harrier.common.durations import format_duration
from harrier.common.errors import HarrierError
from harrier.common.execution import WAITING, LogEntry, TaskRun
from harrier.common.inputs import coerce_inputs, inputs_to_json
from harrier.common.state import State, transition
from harrier.common.task import Task
from harrier.worker.engine import Engine
from harrier.worker.subflows import notify_parent

PAUSE_TYPE = "io.kestra.plugin.core.flow.Pause"
# The advance action that ends a Pause whose pauseDuration passed.
PAUSE_EXPIRED = "pause_expired"


@runtime_checkable
class Expiring(Protocol):
    """A Pause (worker.tasks.pause imports this module, not the reverse)."""

    def expiry(self) -> tuple[timedelta, str] | None: ...


def _is_pause(task: Task) -> bool:
    return PAUSE_TYPE in task.type_names


class NotPaused(HarrierError):
    """The execution is not paused (Kestra answers 409)."""


def paused_runs(engine: Engine) -> list[TaskRun]:
    return [run for run in engine.store.task_runs(engine.execution.id)
            if run.state.current == State.PAUSED and WAITING in run.outputs]


def resume(engine: Engine, inputs: Mapping[str, Any]) -> None:
    """Resume a PAUSED execution: its Pause tasks end SUCCESS with the typed
    `onResume` inputs (InputError lists what is wrong; nothing changes then)."""
    execution_id = engine.execution.id
    state = engine.store.execution_state(execution_id)
    runs = paused_runs(engine)
    if state != State.PAUSED or not runs:
        raise NotPaused(f"execution {execution_id} is not paused (it is {state})")
    outputs: dict[str, dict[str, Any]] = {}
    for run in runs:
        task = engine.index.task(run.task_id)
        specs = getattr(task, "on_resume", []) if _is_pause(task) else []
        outputs[run.id] = {"onResume": inputs_to_json(coerce_inputs(specs, dict(inputs)))}
    if not engine.store.change_execution_state(execution_id, State.RUNNING,
                                               only_from=(State.PAUSED,)):
        raise NotPaused(f"execution {execution_id} is not paused any more")
    engine.execution.state.current = State.RUNNING
    for run in runs:
        engine.store.append_log(LogEntry(execution_id, run.id, run.task_id, "INFO", "resumed"))
        engine.complete_task(run.id, State.SUCCESS, outputs[run.id])


def pause_expired(engine: Engine, run_id: str) -> None:
    """`pauseDuration` passed: RESUME ends the Pause SUCCESS, WARN WARNING,
    FAIL FAILED, CANCEL cancels the execution; the task's `timeout` passed (no
    pauseDuration): FAILED. A no-op if it was resumed."""
    run = engine.store.task_run(engine.execution.id, run_id)
    task = engine.index.task(run.task_id)
    if run.state.current != State.PAUSED or not _is_pause(task):
        return
    expiry = task.expiry() if isinstance(task, Expiring) else None
    if expiry is None:
        return
    behavior = expiry[1]
    execution_id = engine.execution.id
    message = (f"pause duration expired ({behavior})" if getattr(task, "pause_duration", None)
               else f"pause timed out after {format_duration(expiry[0])}")
    if behavior == "CANCEL":
        if run.attempts and not run.attempts[-1].state.current.terminated:
            transition(run.attempts[-1].state, State.KILLED, what=f"attempt of {run.task_id}")
        transition(run.state, State.KILLED, what=f"task {run.task_id}")
        run.outputs = {k: v for k, v in run.outputs.items() if k != WAITING}
        run.error = message
        # One step: no reader (nor a crash) sees it CANCELLED with its Pause running.
        if not engine.store.change_execution_state(execution_id, State.CANCELLED,
                                                   only_from=(State.PAUSED,), task_run=run):
            return  # resumed or killed meanwhile
        engine.execution.state.current = State.CANCELLED
        engine.store.append_log(LogEntry(execution_id, run.id, run.task_id, "WARN", message))
        release_slot(engine.store, engine.runtime.app, execution_id, engine.flow,
                     engine.runtime.flow)
        notify_parent(engine.execution)
        return
    if not engine.store.change_execution_state(execution_id, State.RUNNING,
                                               only_from=(State.PAUSED,)):
        return  # resumed or killed meanwhile
    engine.execution.state.current = State.RUNNING
    state = {"RESUME": State.SUCCESS, "WARN": State.WARNING, "FAIL": State.FAILED}[behavior]
    timed_out = getattr(task, "pause_duration", None) is None
    if timed_out and task.allow_failure:
        # The task's timeout passed: Kestra's State.Type.fail(task) heeds
        # allowFailure (WARNING) and allowWarning (then SUCCESS).
        state = State.SUCCESS if task.allow_warning else State.WARNING
    engine.store.append_log(LogEntry(execution_id, run.id, run.task_id,
                                     "INFO" if state == State.SUCCESS else "WARN", message))
    engine.complete_task(run_id, state, {},
                         message if state == State.FAILED or timed_out else None)
