"""The body of one task attempt, independent of Celery: gate on the
execution's state, record the attempt, run the task, record the outcome."""

from __future__ import annotations

import logging
import shutil
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from harrier.common.durations import format_duration
from harrier.common.errors import HarrierError, TaskFailed, TaskKilled, TemplateError
from harrier.common.execution import Attempt, Execution, LogEntry, TaskRun, new_id
from harrier.common.flow import Flow
from harrier.common.state import State, StateRecord, now, transition
from harrier.common.task import Task
from harrier.common.templating import mask_secrets, render
from harrier.worker.context import TaskContext
from harrier.worker.kill_watch import LEASE_SECONDS
from harrier.worker.runners.registry import runner_for
from harrier.worker.runtime import Runtime
from harrier.worker.tasks.conditions import is_true
from harrier.worker.template_context import build_context

log = logging.getLogger(__name__)

_STOPPED = (State.KILLING, State.KILLED, State.CANCELLED)


@dataclass
class Outcome:
    """What Celery should do next: nothing, or retry after `retry_in` seconds."""

    state: State | None = None
    retry_in: float | None = None
    branch: list[Task] | None = None  # for If/Switch: the tasks chosen to run
    # A second delivery of a task whose attempt is still alive elsewhere (the
    # broker's visibility timeout passed): watch it rather than run it twice.
    duplicate: bool = False
    # A watching copy saw the original finish: the original continues the canvas.
    superseded: bool = False
    # The execution as the task ran in it, its task run up to date: lets the
    # last task finish the execution without loading it again.
    execution: Execution | None = None


def gate_open(execution: Execution, phase: str) -> bool:
    """May a task of this execution start? Not after a kill; not after a failure,
    except the errors and finally tasks, which exist for exactly that case."""
    state = execution.state.current
    if state in _STOPPED or state.terminated:
        return False
    return not (execution.halted and phase == "main")


def start_task_run(runtime: Runtime, execution: Execution, flow: Flow, task: Task,
                   value: str | None = None, *, run_id: str | None = None,
                   attempt: Attempt | None = None) -> TaskRun:
    """The task's run, created if it is the first to ask. With `attempt`, a
    newly created run is stored already RUNNING that attempt (one round trip
    fewer); the caller knows it created the run when the run's id is `run_id`."""
    store = runtime.store
    # The execution becomes RUNNING in the same store call as the first run.
    start = execution.state.current in (State.CREATED, State.QUEUED, State.RESTARTED)
    parent, start = _ensure_parents(runtime, execution, flow, task, start)
    state = StateRecord.start(State.CREATED)
    if attempt is not None:
        transition(state, State.RUNNING, what=f"task {task.id}")
    return store.get_or_create_task_run(execution.id, TaskRun(
        id=run_id or new_id(), execution_id=execution.id, namespace=execution.namespace,
        flow_id=execution.flow_id, task_id=task.id, task_path=task.id,
        parent_task_run_id=parent, value=value, state=state,
        attempts=[attempt] if attempt is not None else []), start_execution=start)


def _ensure_parents(runtime: Runtime, execution: Execution, flow: Flow,
                    task: Task, start: bool) -> tuple[str | None, bool]:
    """Flowable parents get their task run when their first child starts.
    Returns the parent's run id and whether the execution still needs starting."""
    chain = parents_of(flow, task.id)
    parent_id = None
    for parent in chain:
        run = runtime.store.get_or_create_task_run(execution.id, TaskRun(
            id=new_id(), execution_id=execution.id, namespace=execution.namespace,
            flow_id=execution.flow_id, task_id=parent.id, task_path=parent.id,
            parent_task_run_id=parent_id, state=StateRecord.start(State.CREATED)),
            start_execution=start)
        start = False
        if run.state.current == State.CREATED:
            transition(run.state, State.RUNNING, what=f"task {parent.id}")
            runtime.store.save_task_run(run)
        parent_id = run.id
    return parent_id, start


def parents_of(flow: Flow, task_id: str) -> list[Task]:
    """The flowable ancestors of a task, outermost first."""
    def search(tasks: list[Task], trail: list[Task]) -> list[Task] | None:
        for candidate in tasks:
            if candidate.id == task_id:
                return trail
            children = [child for _, child in candidate.children()]
            found = search(children, [*trail, candidate]) if children else None
            if found is not None:
                return found
        return None

    for root in (flow.tasks, flow.errors, flow.finally_):
        found = search(root, [])
        if found is not None:
            return found
    return []


def execute_leaf(runtime: Runtime, execution_id: str, task_id: str, phase: str,
                 value: str | None = None, worker_id: str | None = None,
                 watching: bool = False) -> Outcome:
    store = runtime.store
    execution = store.get_execution(execution_id)
    if not gate_open(execution, phase):
        return Outcome()
    flow = runtime.flow(execution.namespace, execution.flow_id, execution.flow_revision)
    task = flow.task(task_id)
    # A runIf task may still end SKIPPED: its run starts CREATED, as retries do.
    attempt: Attempt | None = Attempt(worker_id=worker_id) if task.run_if is None else None
    run_id = new_id()
    run = start_task_run(runtime, execution, flow, task, value, run_id=run_id, attempt=attempt)
    fresh = attempt is not None and run.id == run_id  # created RUNNING by this delivery
    if run.state.current.terminated:
        # A redelivered copy of a finished task; a watching copy leaves the rest
        # of the canvas to the delivery that ran it.
        return Outcome(state=run.state.current, superseded=watching)

    previous: dict[str, Any] = {}
    if not fresh and run.attempts and run.attempts[-1].state.current == State.RUNNING:
        beat = store.last_beat(execution_id, run.id)
        if beat is not None and (now() - beat).total_seconds() < LEASE_SECONDS:
            return Outcome(state=State.RUNNING, duplicate=True)
        # The worker running this attempt died; its checkpoint (e.g. a Spark
        # submission id) lets the next attempt re-attach instead of starting over.
        lost = run.attempts[-1]
        previous = dict(run.outputs.get("_checkpoint") or {})
        transition(lost.state, State.FAILED, what=f"attempt of {task_id}")
        lost.error = "worker lost while running this attempt"
    execution.task_runs = [r for r in execution.task_runs if r.id != run.id] + [run]
    context = build_context(flow, execution, task, run)
    secrets_used: set[str] = set()

    def render_value(value: Any, field: str = "", shell: bool = False) -> Any:
        return render(value, context, field=f"{task_id}.{field}", shell=shell,
                      secrets=runtime.settings.secrets, secrets_used=secrets_used)

    run_if_error: TemplateError | None = None
    if task.run_if is not None and run.state.current == State.CREATED:
        try:
            skip = not is_true(render_value(task.run_if, "runIf"))
        except TemplateError as exc:
            skip, run_if_error = False, exc  # fails the attempt below, like any template
        if skip:
            transition(run.state, State.SKIPPED, what=f"task {task_id}")
            store.save_task_run(run)
            return Outcome(state=State.SKIPPED, execution=execution)

    if fresh:
        attempt = run.attempts[-1]  # stored RUNNING, with its first heartbeat
    else:
        attempt = Attempt(worker_id=worker_id)
        run.attempts.append(attempt)
        transition(run.state, State.RUNNING, what=f"task {task_id}")
        run.error = None
        store.save_task_run(run)  # a RUNNING save also records the first heartbeat
    context["taskrun"]["attemptsCount"] = len(run.attempts) - 1

    def write_log(level: str, message: str) -> None:
        store.append_log(LogEntry(execution_id, run.id, task_id, level,
                                  mask_secrets(message, secrets_used),
                                  attempt=len(run.attempts)))

    def checkpoint(data: dict[str, Any]) -> None:
        run.outputs["_checkpoint"] = {**run.outputs.get("_checkpoint", {}), **data}
        store.save_task_run(run)

    # One flat directory per attempt: one mkdir, not four, on a hot path.
    workdir = runtime.settings.work_root / f"{execution_id}-{run.id}-{len(run.attempts)}"
    ctx = TaskContext(
        execution=execution, task_run=run, flow=flow, settings=runtime.settings, store=store,
        workdir=workdir, attempt=len(run.attempts), variables=context,
        render_value=render_value, log=write_log,
        runner=lambda t: runner_for(t, runtime.settings), checkpoint=checkpoint,
        previous_checkpoint=previous)
    try:
        if run_if_error is not None:
            raise run_if_error
        workdir.mkdir(parents=True, exist_ok=True)
        with runtime.kill_watch.watching(execution_id, ctx.cancel, run.id), \
                _scratch(workdir, keep=bool(getattr(task, "output_files", None))):
            outputs = task.run(ctx)  # type: ignore[attr-defined]
    except TaskKilled:
        write_log("WARN", "killed")
        return _finish(runtime, run, attempt, State.KILLED, "killed")
    except (TaskFailed, TemplateError, HarrierError) as exc:
        message = mask_secrets(str(exc), secrets_used)
        return _failed(runtime, flow, task, run, attempt, message, write_log,
                       retryable=getattr(exc, "retryable", True)
                       and not isinstance(exc, TemplateError),
                       exit_code=getattr(exc, "exit_code", None))
    except Exception as exc:  # a bug in a task type: fail the task, keep the worker alive
        log.exception("task %s of execution %s crashed", task_id, execution_id)
        message = f"internal error: {type(exc).__name__}: {exc}"
        write_log("ERROR", "".join(traceback.format_exception(exc)).rstrip())
        return _failed(runtime, flow, task, run, attempt, message, write_log,
                       retryable=True, exit_code=None)
    run.outputs = {**{k: v for k, v in run.outputs.items() if k == "_checkpoint"},
                   **(outputs or {})}
    warn = task.retry is not None and task.retry.warning_on_retry and len(run.attempts) > 1
    outcome = _finish(runtime, run, attempt, State.WARNING if warn else State.SUCCESS, None)
    outcome.execution = execution
    return outcome


@contextmanager
def _scratch(workdir: Path, *, keep: bool) -> Iterator[None]:
    """The attempt's working directory goes away with the attempt, unless the
    task declared outputFiles (their paths are outputs later tasks may read)."""
    try:
        yield
    finally:
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)


def _failed(runtime: Runtime, flow: Flow, task: Task, run: TaskRun, attempt: Attempt,
            message: str, write_log: Any, *, retryable: bool,
            exit_code: int | None) -> Outcome:
    write_log("ERROR", message)
    attempt.exit_code = exit_code
    if retryable and task.retry is not None and not _killed(runtime, run.execution_id):
        first = run.attempts[0].state.start_date or now()
        countdown = task.retry.next_countdown(len(run.attempts), now() - first)
        if countdown is not None:
            transition(attempt.state, State.FAILED, what=f"attempt of {task.id}")
            attempt.error = message
            transition(run.state, State.RETRYING, what=f"task {task.id}")
            run.error = message
            runtime.store.save_task_run(run)
            write_log("WARN", f"attempt {len(run.attempts)} failed; retrying in "
                      f"{format_duration(timedelta(seconds=countdown))}")
            return Outcome(state=State.RETRYING, retry_in=countdown)
    if task.allow_failure:
        return _finish(runtime, run, attempt, State.WARNING, message, attempt_state=State.FAILED)
    runtime.store.halt_execution(run.execution_id, f"task {task.id} failed")
    return _finish(runtime, run, attempt, State.FAILED, message)


def _killed(runtime: Runtime, execution_id: str) -> bool:
    return runtime.store.execution_state(execution_id) in _STOPPED


def _finish(runtime: Runtime, run: TaskRun, attempt: Attempt, state: State,
            error: str | None, attempt_state: State | None = None) -> Outcome:
    transition(attempt.state, attempt_state or state, what=f"attempt of {run.task_id}")
    attempt.error = error
    transition(run.state, state, what=f"task {run.task_id}")
    run.error = error
    runtime.store.save_task_run(run)
    return Outcome(state=state)


def execute_decision(runtime: Runtime, execution_id: str, task_id: str,
                     phase: str) -> Outcome:
    """If/Switch: pick the branch in the worker; the caller replaces the Celery task."""
    store = runtime.store
    execution = store.get_execution(execution_id)
    if not gate_open(execution, phase):
        return Outcome()
    flow = runtime.flow(execution.namespace, execution.flow_id, execution.flow_revision)
    task = flow.task(task_id)
    run = start_task_run(runtime, execution, flow, task)
    if run.state.current.terminated:
        return Outcome(state=run.state.current)
    if run.state.current == State.CREATED:
        transition(run.state, State.RUNNING, what=f"task {task_id}")
    context = build_context(flow, execution, task, run)
    try:
        branch, outputs = task.choose(_DecisionContext(runtime, context, task_id))  # type: ignore[attr-defined]
    except (TemplateError, HarrierError) as exc:
        store.append_log(LogEntry(execution_id, run.id, task_id, "ERROR", str(exc)))
        transition(run.state, State.FAILED, what=f"task {task_id}")
        run.error = str(exc)
        store.save_task_run(run)
        if not task.allow_failure:
            store.halt_execution(execution_id, f"task {task_id} failed")
        return Outcome(state=State.FAILED)
    run.outputs = outputs
    store.save_task_run(run)
    return Outcome(state=State.RUNNING, branch=branch)


class _DecisionContext:
    """The part of TaskContext a flowable's choose() needs: rendering."""

    def __init__(self, runtime: Runtime, variables: dict[str, Any], task_id: str) -> None:
        self._runtime = runtime
        self.variables = variables
        self._task_id = task_id

    def render(self, value: Any, field: str, *, shell: bool = False) -> Any:
        return render(value, self.variables, field=f"{self._task_id}.{field}", shell=shell,
                      secrets=self._runtime.settings.secrets)


def end_flowable(runtime: Runtime, execution_id: str, task_id: str) -> None:
    """Close a flowable's task run from its direct children's states."""
    store = runtime.store
    execution = store.get_execution(execution_id)
    flow = runtime.flow(execution.namespace, execution.flow_id, execution.flow_revision)
    task = flow.task(task_id)
    runs = {r.task_id: r for r in execution.task_runs}
    run = runs.get(task_id)
    if run is None or run.state.current.terminated:
        return
    child_states = [runs[c.id].state.current for _, c in task.children() if c.id in runs]
    if any(s in (State.KILLED,) for s in child_states) or _killed(runtime, execution_id):
        state = State.KILLED
    elif any(s == State.FAILED for s in child_states):
        state = State.WARNING if task.allow_failure else State.FAILED
    elif any(s == State.WARNING for s in child_states):
        state = State.WARNING
    else:
        state = State.SUCCESS
    if state == State.FAILED:
        store.halt_execution(execution_id, f"task {task_id} failed")
    transition(run.state, state, what=f"task {task_id}")
    store.save_task_run(run)
