"""The body of one task attempt, independent of Celery: begin the task's run
(one store call, which also tells the execution's state), run the task,
record the outcome and hand over to the engine for what follows."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from harrier.common.dispatch import FlowRef
from harrier.common.durations import format_duration
from harrier.common.errors import HarrierError, TaskFailed, TaskKilled, TemplateError
from harrier.common.execution import Attempt, LogEntry, TaskRun, new_id
from harrier.common.metrics import recorder
from harrier.common.state import STOPPING, State, StateRecord, now, transition
from harrier.common.task import Task
from harrier.common.templating import mask_secrets, render
from harrier.common.truth import is_true
from harrier.worker.context import WAITING, TaskContext, Waiting
from harrier.worker.engine import Engine
from harrier.worker.execution_files import read_text
from harrier.worker.kill_watch import lease_seconds
from harrier.worker.runners.registry import runner_for
from harrier.worker.runtime import Runtime
from harrier.worker.workdirs import attempt_dir, remove_later

log = logging.getLogger(__name__)
_LEVELS = ("TRACE", "DEBUG", "INFO", "WARN", "ERROR")



@dataclass
class Outcome:
    """What Celery should do next: nothing, or retry after `retry_in` seconds."""

    state: State | None = None
    retry_in: float | None = None
    # A second delivery of a task whose attempt is still alive elsewhere (the
    # broker's visibility timeout passed): watch it rather than run it twice.
    duplicate: bool = False
    # A watching copy saw the original finish: the original went on from there.
    superseded: bool = False


def execute_task(runtime: Runtime, execution_id: str, task_id: str, flow_ref: FlowRef, *,
                 parent: str | None = None, value: str | None = None,
                 iteration: int | None = None, values: tuple[str, ...] = (),
                 worker_id: str | None = None, watching: bool = False,
                 redelivered: bool = False) -> Outcome:
    store = runtime.store
    flow = runtime.flow(flow_ref.namespace, flow_ref.flow_id, flow_ref.revision)
    task = flow.index.task(task_id)
    # A runIf task may still end SKIPPED: its run starts CREATED, as retries do.
    attempt: Attempt | None = Attempt(worker_id=worker_id) if task.run_if is None else None
    state = StateRecord.start(State.CREATED)
    if attempt is not None:
        transition(state, State.RUNNING, what=f"task {task.id}")
    run, created, execution = store.begin_task_run(execution_id, TaskRun(
        id=new_id(), execution_id=execution_id, namespace=flow_ref.namespace,
        flow_id=flow_ref.flow_id, task_id=task.id, task_path=task.id,
        parent_task_run_id=parent, value=value, iteration=iteration, value_path=values,
        state=state,
        attempts=[attempt] if attempt is not None else []))
    engine = Engine(runtime, execution, flow)
    if execution.state.current.terminated:
        return Outcome()  # the execution ended (killed) while this waited
    if run.state.current.terminated:
        if watching:
            return Outcome(state=run.state.current, superseded=True)
        if redelivered:
            # This worker's predecessor died after ending the run: make sure
            # what follows was sent.
            engine.replay(task, run)
            engine.flush()
        return Outcome(state=run.state.current)
    if execution.state.current in STOPPING:
        # Killed before it could start (or while it waited to be retried).
        if run.attempts and run.attempts[-1].state.current == State.RUNNING:
            transition(run.attempts[-1].state, State.KILLED, what=f"attempt of {task_id}")
        return _end(engine, task, run, State.KILLED, "killed")

    if WAITING in run.outputs:
        return Outcome(state=run.state.current)  # it waits to be completed, not run again
    fresh = created and attempt is not None  # created RUNNING by this delivery
    previous: dict[str, Any] = {}
    if not fresh and run.attempts and run.attempts[-1].state.current == State.RUNNING:
        beat = store.last_beat(execution_id, run.id)
        if beat is not None and (now() - beat).total_seconds() < lease_seconds(
                runtime.settings.task_lost_after):
            return Outcome(state=State.RUNNING, duplicate=True)
        # The worker running this attempt died; its checkpoint (e.g. a Spark
        # submission id) lets the next attempt re-attach instead of starting over.
        lost = run.attempts[-1]
        previous = dict(run.outputs.get("_checkpoint") or {})
        transition(lost.state, State.FAILED, what=f"attempt of {task_id}")
        lost.error = "worker lost while running this attempt"
    context = engine.context(task, run)
    # SECRET inputs are masked in logs like secret() values, however they got there.
    secrets_used: set[str] = set(execution.secret_values())

    def render_value(value: Any, field: str = "", shell: bool = False,
                     python: bool = False) -> Any:
        return render(value, context, field=f"{task_id}.{field}", shell=shell, python=python,
                      secrets=runtime.settings.secrets, secrets_used=secrets_used,
                      functions={"read": lambda uri: read_text(ctx, uri)})

    run_if_error: TemplateError | None = None
    if task.run_if is not None and run.state.current in (State.CREATED, State.RESTARTED):
        try:
            skip = not is_true(render_value(task.run_if, "runIf"))
        except TemplateError as exc:
            skip, run_if_error = False, exc  # fails the attempt below, like any template
        if skip:
            return _end(engine, task, run, State.SKIPPED, None)

    if fresh:
        attempt = run.attempts[-1]  # stored RUNNING, with its first heartbeat
    else:
        attempt = Attempt(worker_id=worker_id)
        run.attempts.append(attempt)
        transition(run.state, State.RUNNING, what=f"task {task_id}")
        run.error = None
        store.save_task_run(run)  # a RUNNING save also records the first heartbeat
    context["taskrun"]["attemptsCount"] = len(run.attempts) - 1

    least = _LEVELS.index(task.log_level) if task.log_level else 0

    def write_log(level: str, message: str) -> None:
        if level in _LEVELS and _LEVELS.index(level) < least:
            return  # below the task's logLevel: dropped, as in Kestra
        store.append_log(LogEntry(execution_id, run.id, task_id, level,
                                  mask_secrets(message, secrets_used),
                                  attempt=len(run.attempts)))

    def checkpoint(data: dict[str, Any]) -> None:
        run.outputs["_checkpoint"] = {**run.outputs.get("_checkpoint", {}), **data}
        store.save_task_run(run)

    workdir = attempt_dir(runtime.settings.work_root, execution_id, run.id, len(run.attempts))
    ctx = TaskContext(
        execution=execution, task_run=run, flow=flow, settings=runtime.settings, store=store,
        workdir_path=workdir, attempt=len(run.attempts), variables=context,
        render_value=render_value, log=write_log,
        runner=lambda t: runner_for(t, runtime.settings), checkpoint=checkpoint,
        previous_checkpoint=previous, mask=lambda text: mask_secrets(text, secrets_used))
    try:
        if run_if_error is not None:
            raise run_if_error
        with runtime.kill_watch.watching(execution_id, ctx.cancel, run.id), \
                _scratch(ctx), recorder().running(worker_group(task)):
            outputs = task.run(ctx)  # type: ignore[attr-defined]
    except TaskKilled:
        write_log("WARN", "killed")
        return _end(engine, task, run, State.KILLED, "killed")
    except (TaskFailed, TemplateError, HarrierError) as exc:
        message = mask_secrets(str(exc), secrets_used)
        return _failed(engine, task, run, message, write_log,
                       retryable=getattr(exc, "retryable", True)
                       and not isinstance(exc, TemplateError),
                       exit_code=getattr(exc, "exit_code", None))
    except Exception as exc:  # a bug in a task type: fail the task, keep the worker alive
        log.exception("task %s of execution %s crashed", task_id, execution_id)
        message = f"internal error: {type(exc).__name__}: {exc}"
        write_log("ERROR", "".join(traceback.format_exception(exc)).rstrip())
        return _failed(engine, task, run, message, write_log, retryable=True, exit_code=None)
    if isinstance(outputs, Waiting):
        return _wait(engine, run, outputs)
    run.outputs = {**{k: v for k, v in run.outputs.items() if k == "_checkpoint"},
                   **(outputs or {})}
    warn = ctx.warning is not None or (
        task.retry is not None and task.retry.warning_on_retry and len(run.attempts) > 1)
    return _end(engine, task, run, State.WARNING if warn else State.SUCCESS, None)


@contextmanager
def _scratch(ctx: TaskContext) -> Iterator[None]:
    """The attempt's working directory, if the task made one, goes away with
    the attempt (just after it, in the background): the files later tasks read
    (outputFiles, a Download's file) were copied into storage."""
    try:
        yield
    finally:
        if ctx.workdir_created:
            remove_later(ctx.workdir_path)


def _failed(engine: Engine, task: Task, run: TaskRun, message: str, write_log: Any, *,
            retryable: bool, exit_code: int | None) -> Outcome:
    store = engine.store
    attempt = run.attempts[-1]
    write_log("ERROR", message)
    attempt.exit_code = exit_code
    if retryable and task.retry is not None and \
            store.execution_state(run.execution_id) not in STOPPING:
        if task.retry.behavior == "CREATE_NEW_EXECUTION":
            # The next attempt is a new execution; this one ends RETRIED.
            if engine.retry_as_new_execution(task.retry, message):
                return _end(engine, task, run, State.FAILED, message)
        else:
            first = run.attempts[0].state.start_date or now()
            countdown = task.retry.next_countdown(len(run.attempts), now() - first)
            if countdown is not None:
                transition(attempt.state, State.FAILED, what=f"attempt of {task.id}")
                attempt.error = message
                transition(run.state, State.RETRYING, what=f"task {task.id}")
                run.error = message
                store.save_task_run(run)
                recorder().task_retried(task_type(task), worker_group(task))
                write_log("WARN", f"attempt {len(run.attempts)} failed; retrying in "
                          f"{format_duration(timedelta(seconds=countdown))}")
                return Outcome(state=State.RETRYING, retry_in=countdown)
    if task.allow_failure:
        return _end(engine, task, run, State.WARNING, message, attempt_state=State.FAILED)
    return _end(engine, task, run, State.FAILED, message)


def _wait(engine: Engine, run: TaskRun, waiting: Waiting) -> Outcome:
    """The task is not done: its run stays live, marked waiting (no heartbeat is
    expected from it), until Engine.complete_task ends it."""
    if engine.store.execution_state(run.execution_id) in STOPPING:
        # Killed while the task was getting ready to wait: nothing waits for a kill
        # (`then` still runs: it sees the run ended, e.g. a Subflow kills its child).
        outcome = _end(engine, engine.index.task(run.task_id), run, State.KILLED, "killed")
        if waiting.then is not None:
            waiting.then()
        return outcome
    run.outputs = {**run.outputs, **waiting.outputs, WAITING: waiting.reason}
    if waiting.state != run.state.current:
        transition(run.state, waiting.state, what=f"task {run.task_id}")
    engine.store.save_task_run(run)
    if waiting.then is not None:
        waiting.then()
    return Outcome(state=waiting.state)


def _end(engine: Engine, task: Task, run: TaskRun, state: State, error: str | None,
         attempt_state: State | None = None) -> Outcome:
    """The run's terminal state, then what follows (engine), then its messages."""
    if state == State.WARNING and task.allow_warning:
        state = State.SUCCESS
    if run.attempts and not run.attempts[-1].state.current.terminated:
        attempt = run.attempts[-1]
        transition(attempt.state, attempt_state or state, what=f"attempt of {run.task_id}")
        attempt.error = error
    transition(run.state, state, what=f"task {run.task_id}")
    run.error = error
    recorder().task_ended(task_type(task), worker_group(task), state.value,
                          run.state.duration_seconds())
    engine.task_ended(task, run)
    engine.flush()
    return Outcome(state=state)


def worker_group(task: Task) -> str:
    """The queue the task runs on: a metric label bounded by the flows' groups."""
    return task.worker_group.key if task.worker_group is not None else "default"


def task_type(task: Task) -> str:
    """The type's Kestra name (not the alias the flow used): one label per type."""
    return task.type_names[0] if task.type_names else task.type
