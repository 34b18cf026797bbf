"""What happens after a task ends: the engine counts it in its block, starts
what the block may start next, ends the blocks and flowables that are done
and, at the end of the flow's blocks, the execution.

It runs in the worker that ran the ended task (and in the `advance` message
for a start), reads only what it needs (the ended run's block, the owner of
a finished block), and sends one small message per task to run. Flowables
(Parallel, If, Sequential...) run here, inline: they never take a worker slot.

Every change is a compare-and-set in the store (a task run ends once, the
execution ends once), so two workers reaching the same decision, or a
redelivered message replaying one, cannot run anything twice; at worst a
message is sent twice, and its second delivery finds the work done."""

from __future__ import annotations

import io
import json
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from typing import Any

from celery.canvas import Signature

from harrier.common.concurrency import admit_execution, release_slot
from harrier.common.dispatch import (
    FlowRef,
    advance_message,
    publish,
    run_task_message,
    start_messages,
)
from harrier.common.durations import format_duration
from harrier.common.errors import (
    ExecutionNotFound,
    HarrierError,
    InputError,
    StorageError,
    TemplateError,
)
from harrier.common.execution import (
    ITERATION_MARK,
    Attempt,
    Execution,
    LogEntry,
    TaskRun,
    new_id,
)
from harrier.common.flow import Flow, FlowOutput
from harrier.common.inputs import InputSpec, coerce_inputs, to_json_value
from harrier.common.kv import template_function as kv_template_function
from harrier.common.metrics import recorder
from harrier.common.retry import RetryPolicy
from harrier.common.state import STOPPING, State, StateRecord, now, transition
from harrier.common.storage import storage_for, task_file_path
from harrier.common.store import BlockProgress, BlockRef
from harrier.common.task import PHASE_BLOCKS, FlowableTask, FlowControl, Task
from harrier.common.templating import render
from harrier.common.truth import is_true
from harrier.worker.context import WAITING
from harrier.worker.execution_files import check_readable_by
from harrier.worker.loop_runs import (
    ITERATIONS,
    iteration_execution,
    iteration_id,
    iteration_index,
    loop_outputs,
)
from harrier.worker.runtime import Runtime
from harrier.worker.subflows import notify_parent
from harrier.worker.template_context import StoredOutputs, build_context

log = logging.getLogger(__name__)

_NOT_STARTED = (State.CREATED, State.QUEUED, State.RESTARTED)
# The block run counting a loop's iterations (its items are iterations, not tasks).
EACH = "#each"
# A flowable with errors or finally tasks keeps the state its own blocks ended in here.
MAIN = "#main"
# A loop starting many iterations at once sends their messages in batches of this many.
_FLUSH_EVERY = 500
# A Loop over a file of the internal storage: the longest line it reads.
_MAX_LINE = 64 * 1024


@dataclass(frozen=True)
class Scope:
    """Where a run sits among loops: its loop value and iteration (a loop's
    direct children only, as in Kestra) and the values of every loop around
    it, outermost first, which its nested children inherit."""

    value: str | None = None
    iteration: int | None = None
    path: tuple[str, ...] = ()

    @classmethod
    def of(cls, run: TaskRun) -> Scope:
        """The scope `run` and its siblings share."""
        return cls(run.value, run.iteration, run.value_path)

    @classmethod
    def under(cls, run: TaskRun) -> Scope:
        """The scope of the children of a flowable's run (not iterations)."""
        return cls(None, None, run.value_path)

    @property
    def instance(self) -> str:
        """The block run the scope's tasks belong to: one per loop iteration."""
        return "" if self.iteration is None else str(self.iteration)


class Engine:
    """Moves one execution on. Create one per message; call flush() at the end
    to send the messages the decisions produced."""

    def __init__(self, runtime: Runtime, execution: Execution, flow: Flow) -> None:
        self.runtime = runtime
        self.store = runtime.store
        self.execution = execution  # its head: no task runs
        self.flow = flow
        self.index = flow.index
        self.flow_ref = FlowRef(execution.namespace, execution.flow_id,
                                execution.flow_revision)
        self._messages: list[Signature] = []
        # Decisions run one after the other from this queue rather than by
        # recursion: a flow of many flowables that end at once stays shallow.
        self._todo: deque[Callable[[], None]] = deque()
        self._busy = False
        # Nothing to do after the flow's tasks end well (no errors, finally,
        # outputs, retry or concurrency slot): their last end ends the execution.
        self._plain = not (flow.errors or flow.finally_ or flow.outputs or flow.retry
                           or flow.concurrency)

    @classmethod
    def load(cls, runtime: Runtime, execution_id: str) -> Engine:
        head = runtime.store.execution_head(execution_id)
        flow = runtime.flow(head.namespace, head.flow_id, head.flow_revision)
        return cls(runtime, head, flow)

    # -- entry points
    def start(self) -> None:
        """Run the flow's `tasks` (the first message of an execution whose first
        task is a flowable, or that has no task to run; or an iteration of a Loop)."""
        if self.execution.loop_run is not None:
            self._do(self._start_iteration_execution)
            return
        self._do(self._start_flow)

    def _start_flow(self) -> None:
        ref = self._block_ref("", "tasks")
        before = self.store.block_progress(ref)
        self._run_block(None, "", "tasks", 1)
        if before is not None:
            # A redelivered start: what it had started may be cut short (a crash).
            self._resume_block(None, "", "tasks", Scope(), before.next)

    def start_task(self, task_id: str, parent_run_id: str, scope: Scope | None = None) -> None:
        """Start one task of the flow (a flowable whose run a restart removed)."""
        self._do(lambda: self._start_task(self.index.task(task_id), parent_run_id,
                                          scope or Scope()))

    def next_iteration(self, run_id: str, block: str, iteration: int) -> None:
        """The delay before a LoopUntil's next iteration has passed: run it."""
        self._do(lambda: self._next_iteration(run_id, block, iteration))

    def _next_iteration(self, run_id: str, block: str, iteration: int) -> None:
        run = self.store.task_run(self.execution.id, run_id)
        if run.state.current.terminated or self.stopping:
            return  # killed while it waited: the kill ended it
        owner = self.index.task(run.task_id)
        assert isinstance(owner, FlowableTask)
        scope = Scope(None, iteration, (*run.value_path, f"{ITERATION_MARK}{iteration}"))
        self._run_block(owner, run.id, block, 1, scope)

    def reopen_flowable(self, run: TaskRun, children: dict[str, State]) -> None:
        """A restart reopened `run` (its failed children run again): let its
        flowable rebuild what it keeps, from the children that stay ended."""
        task = self.index.task(run.task_id)
        assert isinstance(task, FlowableTask)
        self._do(lambda: task.reopened(_Control(self, task, run), children))

    def finish(self) -> None:
        """Go on from the end of the flow's `tasks` (restart of a failed finally)."""
        progress = self.store.block_progress(self._block_ref("", "tasks"))
        state = progress.state if progress is not None else State.SUCCESS
        self._do(lambda: self._flow_block_ended("tasks", state))


    def send_task(self, task: Task, parent_run_id: str, scope: Scope | None = None) -> None:
        """Send a plain task's message (a rerun of a failed one)."""
        scope = scope or Scope()
        self._messages.append(run_task_message(self.flow_ref, self.execution.id, task,
                                               parent_run_id or None, scope.value,
                                               scope.iteration, scope.path))

    def complete_task(self, run_id: str, state: State, outputs: dict[str, Any] | None = None,
                      error: str | None = None) -> bool:
        """End a task run that was waiting (see worker.context.Waiting): a resumed
        Pause, a Subflow whose child ended. False if it had ended already."""
        run = self.store.task_run(self.execution.id, run_id)
        if run.state.current.terminated:
            return False
        run.outputs = {k: v for k, v in {**run.outputs, **(outputs or {})}.items()
                       if k not in (WAITING, "_checkpoint")}
        if run.attempts and not run.attempts[-1].state.current.terminated:
            transition(run.attempts[-1].state, state, what=f"attempt of {run.task_id}")
            run.attempts[-1].error = error
        if run.state.current == State.PAUSED and state != State.KILLED:
            transition(run.state, State.RUNNING, what=f"task {run.task_id}")
        transition(run.state, state, what=f"task {run.task_id}")
        run.error = error
        self.task_ended(self.index.task(run.task_id), run)
        return True

    def task_ended(self, task: Task, run: TaskRun) -> None:
        """`run` (of a plain task) has reached its terminal state: record it and go on."""
        self._do(lambda: self._node_ended(task, run))

    def replay(self, task: Task, run: TaskRun) -> None:
        """A redelivered message found its run ended: its worker died between
        ending it and sending what follows. Send again what may be missing."""
        self._do(lambda: self._replay(task, run))

    def resume(self, runs: list[TaskRun]) -> None:
        """The execution stopped moving: a message was lost (taken by a worker
        that died before starting it, or never sent by one that died between
        ending a task and sending the next). Send again what each block with an
        ended run may be missing; a message that arrives twice finds its run."""
        seen: set[tuple[str, str | None, str, str]] = set()
        for run in runs:
            if not run.state.current.terminated:
                continue
            try:
                task = self.index.task(run.task_id)
            except KeyError:
                continue  # not in this revision (a restart's leftover)
            node = self.index.node(task.id)
            key = (run.parent_task_run_id or "", node.owner, node.block,
                   Scope.of(run).instance)
            if key not in seen:
                seen.add(key)
                self.replay(task, run)

    @property
    def pending(self) -> list[Signature]:
        """The messages flush() would send."""
        return list(self._messages)

    def flush(self) -> None:
        messages, self._messages = self._messages, []
        publish(messages)

    # -- the work queue
    def _do(self, action: Callable[[], None]) -> None:
        self._todo.append(action)
        if self._busy:
            return
        self._busy = True
        try:
            while self._todo:
                self._todo.popleft()()
        finally:
            self._busy = False

    @property
    def stopping(self) -> bool:
        """Killed, or ended another way (RETRIED): nothing more starts."""
        state = self.execution.state.current
        return state in STOPPING or state.terminated

    def _refresh_state(self) -> None:
        self.execution.state.current = self.store.execution_state(self.execution.id)

    def _block_ref(self, owner_run_id: str, block: str, instance: str = "") -> BlockRef:
        return BlockRef(self.execution.id, owner_run_id, block, instance)

    # -- blocks
    def _run_block(self, owner: FlowableTask | None, owner_run_id: str, block: str,
                   window: int, scope: Scope | None = None) -> None:
        scope = scope or Scope()
        tasks = self.index.block(owner.id if owner else None, block)
        if not tasks:
            self._todo.append(lambda: self._block_ended(owner, owner_run_id, block,
                                                        State.SUCCESS, scope.instance))
            return
        progress = self.store.start_block(
            self._block_ref(owner_run_id, block, scope.instance), len(tasks), window)
        for index in progress.claimed:
            self._start_task(tasks[index], owner_run_id, scope)

    def _start_task(self, task: Task, parent_run_id: str, scope: Scope) -> None:
        if isinstance(task, FlowableTask):
            self._todo.append(lambda: self._start_flowable(task, parent_run_id, scope))
        else:
            self._messages.append(run_task_message(self.flow_ref, self.execution.id, task,
                                                   parent_run_id or None, scope.value,
                                                   scope.iteration, scope.path))

    # -- loops: one run of a block per value, `window` iterations at a time
    def _run_each(self, owner: FlowableTask, run: TaskRun, block: str, values: list[str],
                  window: int) -> None:
        if not values:
            self._todo.append(lambda: self._each_ended(owner, run.id, block, State.SUCCESS))
            return
        self.store.put_loop_values(self.execution.id, run.id, values)
        progress = self.store.start_block(self._block_ref(run.id, EACH), len(values), window)
        for count, index in enumerate(progress.claimed, 1):
            self._start_iteration(owner, run, block, index, values[index])
            if count % _FLUSH_EVERY == 0:
                self.flush()  # a long list: messages in batches, not all held at once

    def _start_iteration(self, owner: FlowableTask, run: TaskRun, block: str, index: int,
                         value: str) -> None:
        scope = Scope(owner.iteration_value(value), index,
                      (*run.value_path, owner.path_element(index, value)))
        self._run_block(owner, run.id, block, owner.iteration_window(), scope)

    def _iteration_ended(self, owner: FlowableTask, run: TaskRun, block: str, index: int,
                         state: State) -> None:
        progress = self.store.end_block_item(self._block_ref(run.id, EACH), f"{run.id}#{index}",
                                             state, may_continue=not self.stopping)
        if progress is None:
            return  # counted already (a replay)
        for claimed in progress.claimed:
            value = self.store.loop_value(self.execution.id, run.id, claimed)
            self._start_iteration(owner, run, block, claimed, value)
        if progress.done:
            self._todo.append(lambda: self._each_ended(owner, run.id, block, progress.state))

    def _resume_block(self, owner_id: str | None, parent: str, block: str, scope: Scope,
                      started: int) -> None:
        """The block's first `started` tasks were started: send again those with
        no run yet (a copy that finds its run started stands by), and let a loop
        among them start the iterations it may not have started."""
        siblings = self.index.block(owner_id, block)
        for index in range(started):
            sibling = siblings[index]
            found = self.store.find_task_run(self.execution.id, sibling.id, scope.path)
            if found is None:
                self._start_task(sibling, parent, scope)
            elif isinstance(sibling, FlowableTask) and sibling.runs_executions and \
                    not found.state.current.terminated:
                self._todo.append(partial(self._resume_isolated, sibling, found))
            elif isinstance(sibling, FlowableTask) and sibling.is_loop and \
                    not found.state.current.terminated:
                self._todo.append(partial(self._resume_each, sibling, found))

    def _start_over(self, owner: FlowableTask, run: TaskRun) -> None:
        """Start a loop's run again from its values (rendered again)."""
        control = _Control(self, owner, run)
        try:
            owner.start(control)
        except (TemplateError, HarrierError) as exc:
            control.fail(str(exc))

    def _resume_each(self, owner: FlowableTask, run: TaskRun) -> None:
        """After a crash while a loop started its iterations (thousands may start
        at once): start those it claimed and never started. Read on replay only."""
        each = self.store.block_progress(self._block_ref(run.id, EACH))
        if each is None:
            self._start_over(owner, run)  # it died before claiming any
            return
        for count, index in enumerate(range(each.next), 1):
            value = self.store.loop_value(self.execution.id, run.id, index)
            block = self.store.block_progress(self._block_ref(run.id, "tasks", str(index)))
            if block is None:
                self._start_iteration(owner, run, "tasks", index, value)
            else:  # started, but its messages may not have been sent
                scope = Scope(owner.iteration_value(value), index,
                              (*run.value_path, owner.path_element(index, value)))
                self._resume_block(owner.id, run.id, "tasks", scope, block.next)
            if count % _FLUSH_EVERY == 0:
                self.flush()

    def _each_ended(self, owner: FlowableTask, run_id: str, block: str, state: State) -> None:
        self._block_ended(owner, run_id, block, state)

    def _node_ended(self, task: Task, run: TaskRun) -> None:
        node = self.index.node(task.id)
        ref = self._block_ref(run.parent_task_run_id or "", node.block, Scope.of(run).instance)
        progress = self.store.end_task_run(
            run, ref, may_continue=not self.stopping,
            finish=node.owner is None and node.block == "tasks" and self._plain)
        if progress is None:
            return  # ended by someone else, who went on from there
        if progress.finished is not None:
            self.execution.state.current = progress.finished  # ended in the same step
            self._ended(progress.finished)
            notify_parent(self.execution)
            return
        self._after(task, run, progress)

    def _after(self, task: Task, run: TaskRun, progress: BlockProgress) -> None:
        node = self.index.node(task.id)
        parent_run_id = run.parent_task_run_id or ""
        scope = Scope.of(run)
        siblings = self.index.block(node.owner, node.block)
        for index in progress.claimed:
            self._start_task(siblings[index], parent_run_id, scope)
        if progress.done:
            owner = self.index.task(node.owner) if node.owner else None
            assert owner is None or isinstance(owner, FlowableTask)
            self._todo.append(lambda: self._block_ended(owner, parent_run_id, node.block,
                                                        progress.state, scope.instance))

    def _block_ended(self, owner: FlowableTask | None, owner_run_id: str, block: str,
                     state: State, instance: str = "") -> None:
        if owner is None:
            self._flow_block_ended(block, state)
            return
        run = self.store.task_run(self.execution.id, owner_run_id)
        if run.state.current.terminated:
            return
        control = _Control(self, owner, run)
        if instance and owner.is_loop and self._is_iteration_root(run):
            # This execution's own iteration of the Loop: its errors and finally
            # tasks run here, in the iteration, as in Kestra.
            control.end(State.KILLED if self.stopping and state == State.SUCCESS else state)
            return
        if instance and owner.is_loop:
            self._iteration_ended(owner, run, block, int(instance), state)
            return
        if self.stopping:
            control.end(State.KILLED if state == State.SUCCESS else state)
            return
        if instance:
            try:
                owner.iteration_ended(control, block, int(instance), state)
            except (TemplateError, HarrierError) as exc:
                control.fail(str(exc))
            return
        if block in PHASE_BLOCKS:
            self._phase_ended(owner, run, block, state)
            return
        try:
            owner.block_ended(control, block, state)
        except (TemplateError, HarrierError) as exc:
            control.fail(str(exc))

    # -- a flowable's own `errors` and `finally` tasks
    def _end_flowable(self, task: FlowableTask, run: TaskRun, state: State,
                      error: str | None) -> None:
        """What the flowable's blocks came to: run its errors tasks after a
        failure, then its finally tasks, then end it."""
        if run.state.current.terminated:
            return
        if not self.stopping and state.terminated and (task.errors or task.finally_) and \
                self.store.block_progress(self._block_ref(run.id, MAIN)) is None:
            # Kept for after errors/finally (they may run in another worker).
            self.store.set_block_progress(self._block_ref(run.id, MAIN), BlockProgress(
                total=1, next=1, ended=1, stopped=False, counts={state.value: 1}))
            if state == State.FAILED and task.errors:
                self._run_block(task, run.id, "errors", 1, Scope.under(run))
                return
            if task.finally_:
                self._run_block(task, run.id, "finally", 1, Scope.under(run))
                return
        self._close_flowable(task, run, state, error)

    def _phase_ended(self, task: FlowableTask, run: TaskRun, block: str, state: State) -> None:
        main = self.store.block_progress(self._block_ref(run.id, MAIN))
        main_state = main.state if main is not None else State.FAILED
        if block == "errors" and task.finally_ and not self.stopping:
            self._run_block(task, run.id, "finally", 1, Scope.under(run))
            return
        # Kestra: the errors tasks do not save the flowable (it stays FAILED);
        # a failed finally task fails it.
        final = main_state
        if block == "finally" and state in (State.FAILED, State.KILLED):
            final = State.FAILED
        elif block == "finally" and state == State.WARNING and final == State.SUCCESS:
            final = State.WARNING
        self._close_flowable(task, run, final, run.error)

    # -- flowables
    def _start_flowable(self, task: FlowableTask, parent_run_id: str, scope: Scope) -> None:
        state = StateRecord.start(State.CREATED)
        if task.run_if is None:  # with a runIf it may still end SKIPPED, from CREATED
            transition(state, State.RUNNING, what=f"task {task.id}")
        run, created, head = self.store.begin_task_run(self.execution.id, TaskRun(
            id=new_id(), execution_id=self.execution.id, namespace=self.execution.namespace,
            flow_id=self.execution.flow_id, task_id=task.id, task_path=task.id,
            parent_task_run_id=parent_run_id or None, value=scope.value,
            iteration=scope.iteration, value_path=scope.path, state=state))
        self.execution.state.current = head.state.current
        if not created:
            return  # started before (a replay): its blocks are under way
        control = _Control(self, task, run)
        if self.stopping:
            control.end(State.KILLED)
            return
        try:
            if task.run_if is not None:
                if not is_true(control.render(task.run_if, "runIf")):
                    control.end(State.SKIPPED)
                    return
                transition(run.state, State.RUNNING, what=f"task {task.id}")
                self.store.save_task_run(run)
            task.start(control)
        except (TemplateError, HarrierError) as exc:
            control.fail(str(exc))

    def _close_flowable(self, task: FlowableTask, run: TaskRun, state: State,
                        error: str | None) -> None:
        if run.state.current.terminated:
            return
        if self._is_iteration_root(run):
            self._end_iteration_execution(task, run, state, error)
            return
        if state == State.FAILED and task.retry is not None and not self.stopping and \
                self._retry_flowable(task, run, error):
            return
        if state == State.FAILED and task.allow_failure:
            state = State.WARNING  # its owner goes on, as after a task with allowFailure
        if state == State.WARNING and task.allow_warning:
            state = State.SUCCESS
        transition(run.state, state, what=f"task {task.id}")
        run.error = error
        self._node_ended(task, run)

    def _retry_flowable(self, task: FlowableTask, run: TaskRun, error: str | None) -> bool:
        """Kestra retries what failed under a flowable with a `retry`: each try
        is an attempt of the flowable's run. False when the retries are spent."""
        assert task.retry is not None
        if task.retry.behavior == "CREATE_NEW_EXECUTION":
            return self.retry_as_new_execution(task.retry, error)
        attempts_made = len(run.attempts) + 1
        started = run.state.start_date or now()
        countdown = task.retry.next_countdown(attempts_made, now() - started)
        if countdown is None:
            return False
        attempt = Attempt(state=StateRecord.start(State.RUNNING, at=started))
        transition(attempt.state, State.FAILED, what=f"attempt of {task.id}")
        attempt.error = error
        run.attempts.append(attempt)
        transition(run.state, State.RETRYING, what=f"task {task.id}")
        run.error = error
        self.store.save_task_run(run)
        self.store.append_log(LogEntry(
            self.execution.id, run.id, task.id, "WARN",
            f"attempt {attempts_made} failed; retrying what failed in "
            f"{format_duration(timedelta(seconds=countdown))}"))
        publish([advance_message(self.flow_ref, self.execution.id, "retry_task",
                                 task_id=run.id)], countdown=countdown)
        return True

    def _retry_flow(self) -> bool:
        """A flow-level `retry` after the flow's tasks failed: run the failed ones
        again in this execution, or start a new one. False when spent."""
        retry = self.flow.retry
        assert retry is not None
        if retry.behavior == "CREATE_NEW_EXECUTION":
            return self.retry_as_new_execution(retry, self._first_error())
        execution = self.store.get_execution(self.execution.id)
        attempts_made = 1 + sum(1 for h in execution.state.histories
                                if h.state == State.RETRYING)
        countdown = retry.next_countdown(attempts_made, now() - execution.start_date)
        if countdown is None:
            return False
        if not self.store.change_execution_state(self.execution.id, State.RETRYING,
                                                 only_from=(State.RUNNING,)):
            return False
        self.execution.state.current = State.RETRYING
        self.store.append_log(LogEntry(
            self.execution.id, None, None, "WARN",
            f"attempt {attempts_made} of the flow failed; running the failed tasks again in "
            f"{format_duration(timedelta(seconds=countdown))}"))
        publish([advance_message(self.flow_ref, self.execution.id, "retry_flow")],
                countdown=countdown)
        return True

    def retry_as_new_execution(self, retry: RetryPolicy, error: str | None) -> bool:
        """CREATE_NEW_EXECUTION: this execution ends RETRIED and a new one, the
        next attempt, starts over after the policy's delay."""
        attempts_made = self.execution.attempt_number
        countdown = retry.next_countdown(attempts_made, now() - self.execution.start_date)
        if countdown is None:
            return False
        nxt = Execution(
            id=new_id(), namespace=self.execution.namespace, flow_id=self.execution.flow_id,
            flow_revision=self.execution.flow_revision, inputs=dict(self.execution.inputs),
            labels=dict(self.execution.labels), trigger=self.execution.trigger,
            attempt_number=attempts_made + 1,
            original_id=self.execution.original_id or self.execution.id,
            secret_inputs=list(self.execution.secret_inputs),
            state=StateRecord.start(State.CREATED))
        # The next attempt exists before this one ends, so whoever sees this
        # execution RETRIED finds it.
        self.store.create_execution(nxt)
        if not self.store.change_execution_state(
                self.execution.id, State.RETRIED, error=error,
                only_from=(State.RUNNING, State.RETRYING)):
            self.store.delete_execution(nxt.id)  # a kill came first
            return False
        self.execution.state.current = State.RETRIED
        release_slot(self.store, self.runtime.app, self.execution.id, self.flow,
                     self.runtime.flow)
        self.store.append_log(LogEntry(
            self.execution.id, None, None, "WARN",
            f"attempt {attempts_made} failed: execution {nxt.id} makes the next attempt in "
            f"{format_duration(timedelta(seconds=countdown))}"))
        if self.flow.concurrency is None or admit_execution(self.runtime.app, self.flow, nxt,
                                                            self.store):
            publish(start_messages(self.store, self.flow, self.flow_ref, nxt.id),
                    countdown=countdown)
        return True

    # -- the flow's own blocks: tasks, then errors after a failure, then finally
    def _flow_block_ended(self, block: str, state: State) -> None:
        more = self.flow.finally_ or (block == "tasks" and (self.flow.errors or self.flow.retry))
        if more and not self.stopping:
            self._refresh_state()  # a kill meanwhile: no errors, finally or retry
        failed = state in (State.FAILED, State.KILLED)
        if block == "tasks" and state == State.FAILED and not self.stopping and \
                self.flow.retry is not None and self._retry_flow():
            return
        if block == "tasks" and failed and not self.stopping and self.flow.errors:
            self._run_block(None, "", "errors", 1)
            return
        if block in ("tasks", "errors") and not self.stopping and self.flow.finally_:
            self._run_block(None, "", "finally", 1)
            return
        self._finalize(block, state)

    def _finalize(self, last_block: str, last_state: State) -> None:
        result = self._final_state(last_block, last_state)
        error = None
        if result in (State.SUCCESS, State.WARNING) and self.flow.outputs:
            outputs, error = self._flow_outputs()
            if error is not None:
                result = State.FAILED
            self.store.set_execution_outputs(self.execution.id, outputs)
        elif result == State.FAILED:
            error = self._first_error()
        if self.execution.state.current in _NOT_STARTED and result != State.KILLED:
            # Nothing ran (every task disabled): pass through RUNNING as Kestra does.
            self.store.change_execution_state(self.execution.id, State.RUNNING,
                                              only_from=_NOT_STARTED)
        ended = self._end_execution(result, error)
        if ended is None:
            return
        self._ended(ended)
        release_slot(self.store, self.runtime.app, self.execution.id, self.flow,
                     self.runtime.flow)
        notify_parent(self.execution)

    def _end_execution(self, result: State, error: str | None) -> State | None:
        """End the execution in `result`, or KILLED if a kill came while its last
        tasks ended (it wins); None if it had ended already (a kill with nothing
        running, a replay)."""
        alive = (State.KILLING,) if result == State.KILLED else (
            State.RUNNING, State.RETRYING, *_NOT_STARTED)
        if not self.store.change_execution_state(self.execution.id, result, error=error,
                                                 only_from=alive):
            if result == State.KILLED or not self.store.change_execution_state(
                    self.execution.id, State.KILLED, only_from=(State.KILLING,)):
                return None
            result = State.KILLED
        self.execution.state.current = result
        return result

    def _ended(self, state: State) -> None:
        started = self.execution.state.start_date
        recorder().execution_ended(self.flow.namespace, self.flow.id, state.value,
                                   (now() - started).total_seconds() if started else None)

    def _final_state(self, last_block: str, last_state: State) -> State:
        if self.stopping:
            return State.KILLED
        states = [last_state]
        # The flow's other blocks that ran before this one (errors, finally).
        for block in ("tasks", "errors", "finally"):
            if block != last_block and self.index.block(None, block):
                progress = self.store.block_progress(self._block_ref("", block))
                if progress is not None:
                    states.append(progress.state)
        for state in (State.FAILED, State.KILLED, State.WARNING):
            if state in states:
                return state if state != State.KILLED else State.FAILED
        return State.SUCCESS

    def _first_error(self) -> str | None:
        for run in self.store.task_runs(self.execution.id):
            if run.state.current == State.FAILED and run.error:
                return run.error
        return None

    def _flow_outputs(self) -> tuple[dict[str, Any], str | None]:
        return self._render_outputs(self.flow.outputs, self.context())

    def _render_outputs(self, specs: list[FlowOutput], context: dict[str, Any]
                        ) -> tuple[dict[str, Any], str | None]:
        outputs: dict[str, Any] = {}
        for output in specs:
            try:
                value = render(output.value, context, field=f"outputs.{output.id}",
                               secrets=self.runtime.settings.secrets)
                typed = coerce_inputs([InputSpec(id=output.id, type=output.type)],
                                      {output.id: value})
                outputs[output.id] = to_json_value(typed[output.id])
            except (TemplateError, InputError) as exc:
                message = str(exc).replace("input ", "output ", 1)
                self.store.append_log(LogEntry(self.execution.id, None, None, "ERROR",
                                               message))
                return outputs, message
        return outputs, None

    # -- Kestra 2.0's Loop: each iteration an execution of its own (worker.loop_runs)
    def _is_iteration_root(self, run: TaskRun) -> bool:
        """`run` is the Loop's run this execution, an iteration, starts from."""
        loop_run = self.execution.loop_run
        return loop_run is not None and run.parent_task_run_id is None and \
            run.task_id == loop_run.get("taskId")

    def _start_iteration_execution(self) -> None:
        loop_run = self.execution.loop_run
        assert loop_run is not None
        loop = self.index.task(str(loop_run["taskId"]))
        assert isinstance(loop, FlowableTask)
        path = (*[str(v) for v in loop_run.get("path") or []], str(loop_run["element"]))
        run, created, head = self.store.begin_task_run(self.execution.id, TaskRun(
            id=new_id(), execution_id=self.execution.id, namespace=self.execution.namespace,
            flow_id=self.execution.flow_id, task_id=loop.id, task_path=loop.id,
            value_path=path, state=StateRecord.start(State.RUNNING)))
        self.execution.state.current = head.state.current
        index = int(loop_run["index"])
        scope = Scope(str(loop_run["value"]), index, path)
        if not created:
            # A redelivered start: what it had started may be cut short.
            before = self.store.block_progress(self._block_ref(run.id, "tasks", str(index)))
            if before is not None:
                self._resume_block(loop.id, run.id, "tasks", scope, before.next)
                return
        if self.stopping or self._parent_stopping(str(loop_run["parentId"])):
            # (A kill of the parent may come while its Loop creates iterations.)
            self.store.change_execution_state(self.execution.id, State.KILLING,
                                              only_from=(State.RUNNING,))
            self.execution.state.current = State.KILLING
            _Control(self, loop, run).end(State.KILLED)
            return
        self._run_block(loop, run.id, "tasks", loop.iteration_window(), scope)

    def _parent_stopping(self, parent_id: str) -> bool:
        try:
            state = self.store.execution_state(parent_id)
        except ExecutionNotFound:
            return True
        return state in STOPPING or state.terminated

    def _end_iteration_execution(self, loop: FlowableTask, run: TaskRun, state: State,
                                 error: str | None) -> None:
        """The iteration's tasks (and the Loop's errors and finally) ended: end
        the execution in their state (the Loop's allowFailure applies in the
        parent), with the Loop's declared `outputs` rendered here."""
        result = State.KILLED if self.stopping else state
        if result == State.SKIPPED:
            result = State.SUCCESS
        transition(run.state, result, what=f"task {loop.id}")
        run.error = error
        self.store.save_task_run(run)
        specs: list[FlowOutput] = getattr(loop, "outputs", [])
        if result in (State.SUCCESS, State.WARNING) and specs:
            outputs, error = self._render_outputs(specs, self.context(loop, run))
            if error is not None:
                result = State.FAILED
            elif (self.execution.loop_run or {}).get("storeOutputs"):
                # fetchType STORE: the outputs in a file, the iteration's outputs its uri.
                path = task_file_path(self.execution.namespace, self.execution.flow_id,
                                      self.execution.id, loop.id, run.id, "outputs.json")
                uri = storage_for(self.runtime.settings.storage_root).put(
                    path, io.BytesIO(json.dumps(outputs, default=str).encode()))
                outputs = {"uri": uri}
            self.store.set_execution_outputs(self.execution.id, outputs)
        elif result == State.FAILED:
            error = error or self._first_error()
        if self._end_execution(result, error) is None:
            return
        # (Not counted in the executions metrics: it is part of its parent's.)
        notify_parent(self.execution)

    def _run_isolated(self, owner: FlowableTask, run: TaskRun, values: list[str],
                      window: int, store_outputs: bool = False) -> None:
        """In the parent: start the Loop's iterations, `window` at a time."""
        if not values:
            self._close_isolated(owner, run, State.SUCCESS, BlockProgress(
                total=0, next=0, ended=0, stopped=False, counts={}), None)
            return
        self.store.put_loop_values(self.execution.id, run.id, values)
        progress = self.store.start_block(self._block_ref(run.id, ITERATIONS), len(values),
                                          window)
        run.outputs.update({"iterationCount": len(values)})
        if store_outputs:
            run.outputs["_storeOutputs"] = True  # read back by _start_isolated
        self.store.save_task_run(run)
        for count, index in enumerate(progress.claimed, 1):
            self._start_isolated(owner, run, index, values[index])
            if count % _FLUSH_EVERY == 0:
                self.flush()

    def _start_isolated(self, owner: FlowableTask, run: TaskRun, index: int,
                        entry: str) -> None:
        child_id = iteration_id(run.id, index)
        try:
            state = self.store.execution_state(child_id)
        except ExecutionNotFound:
            # Concurrency limits and triggers do not apply: it is part of this execution.
            self.store.create_execution(iteration_execution(
                self.execution, owner, run, index, entry,
                store_outputs=bool(run.outputs.get("_storeOutputs"))))
            state = State.CREATED
        if state == State.CREATED:  # (again, if a crash may have lost its start)
            self._messages.append(advance_message(self.flow_ref, child_id, "start"))

    def _resume_isolated(self, owner: FlowableTask, run: TaskRun) -> None:
        """After a lost message: start the iterations claimed and never
        started, and count again those that ended (counting is once only)."""
        progress = self.store.block_progress(self._block_ref(run.id, ITERATIONS))
        if progress is None:
            self._start_over(owner, run)  # it died before claiming any
            return
        for index in range(progress.next):
            child_id = iteration_id(run.id, index)
            try:
                state = self.store.execution_state(child_id)
            except ExecutionNotFound:
                state = State.CREATED
            if state == State.CREATED:
                self._start_isolated(owner, run, index,
                                     self.store.loop_value(self.execution.id, run.id, index))
            elif state.terminated:
                self._isolated_ended(run.id, child_id)

    def iteration_ended(self, run_id: str, child_id: str) -> None:
        """An iteration of the Loop run `run_id` has ended (a LOOP_ENDED message)."""
        self._do(lambda: self._isolated_ended(run_id, child_id))

    def _isolated_ended(self, run_id: str, child_id: str) -> None:
        run = self.store.task_run(self.execution.id, run_id)
        index = iteration_index(run_id, child_id)
        if run.state.current.terminated or index is None:
            return  # ended already (a failed iteration ended it, or a kill)
        loop = self.index.task(run.task_id)
        assert isinstance(loop, FlowableTask)
        try:
            child = self.store.execution_head(child_id)
        except ExecutionNotFound:
            return
        ended = child.state.current
        transmit = bool(getattr(loop, "transmit_failed", True))
        failed = transmit and ended in (State.FAILED, State.KILLED) and not self.stopping
        control = _Control(self, loop, run)
        if failed:
            reason = f": {child.error}" if child.error else ""
            control.log("ERROR", f"Loop iteration {index} ended in {ended.value} in execution "
                                 f"{child_id}{reason} (that execution's logs say more)")
        # The count's states only steer it (a FAILED or KILLED one stops it for
        # good, whoever counts next); the loop's outputs count the iterations' own.
        counted = State.WARNING if ended in (State.FAILED, State.KILLED) else State.SUCCESS
        if failed or self.stopping or self._loop_breaks(loop, run, child_id, index):
            counted = State.KILLED
        progress = self.store.end_block_item(self._block_ref(run.id, ITERATIONS), child_id,
                                             counted, may_continue=counted != State.KILLED)
        if progress is None:
            return  # counted already (a redelivered message)
        for claimed in progress.claimed:
            entry = self.store.loop_value(self.execution.id, run.id, claimed)
            self._start_isolated(loop, run, claimed, entry)
        if failed:
            self._close_isolated(loop, run, State.FAILED, progress,
                                 f"Loop iteration {index} ended in {ended.value} "
                                 f"(execution {child_id})")
        elif progress.done:
            self._close_isolated(loop, run, State.KILLED if self.stopping else State.SUCCESS,
                                 progress, None)

    def _loop_breaks(self, loop: FlowableTask, run: TaskRun, child_id: str,
                     index: int) -> bool:
        """Kestra's breakWhen, rendered after an iteration with `item` and
        `iteration`: true, and no other iteration starts."""
        condition = getattr(loop, "break_when", None)
        if condition is None:
            return False
        child = self.store.get_execution(child_id)
        context = self.context(loop, run)
        loop_run = child.loop_run or {}
        context["item"] = {"index": index, "value": loop_run.get("value"),
                           **({"key": loop_run["key"]} if "key" in loop_run else {})}
        context["iteration"] = {"executionId": child.id, "state": child.state.current.value,
                                "outputs": dict(child.outputs or {})}
        try:
            return is_true(render(condition, context, field=f"{loop.id}.breakWhen",
                                  secrets=self.runtime.settings.secrets))
        except (TemplateError, HarrierError) as exc:
            _Control(self, loop, run).log("ERROR", f"breakWhen: {exc}; no other iteration "
                                                   "starts")
            return True

    def _close_isolated(self, loop: FlowableTask, run: TaskRun, state: State,
                        progress: BlockProgress, error: str | None) -> None:
        run.outputs.pop("_storeOutputs", None)
        run.outputs.update(loop_outputs(self.store, run, progress))
        if state == State.FAILED and loop.allow_failure:
            state = State.WARNING
        if state == State.WARNING and loop.allow_warning:
            state = State.SUCCESS
        if run.state.current.terminated:
            return
        transition(run.state, state, what=f"task {loop.id}")
        run.error = error
        self._node_ended(loop, run)

    # -- replay after a crash
    def _replay(self, task: Task, run: TaskRun) -> None:
        node = self.index.node(task.id)
        parent = run.parent_task_run_id or ""
        progress = self.store.block_progress(self._block_ref(parent, node.block,
                                                             Scope.of(run).instance))
        if progress is None:
            return
        # The block's tasks that were started but have no run yet may never have
        # been sent: send them (again). A copy that finds its run started stands by.
        scope = Scope.of(run)
        self._resume_block(node.owner, parent, node.block, scope, progress.next)
        if progress.done:
            owner = self.index.task(node.owner) if node.owner else None
            assert owner is None or isinstance(owner, FlowableTask)
            self._todo.append(lambda: self._block_ended(owner, parent, node.block,
                                                        progress.state, scope.instance))

    # -- templates
    def context(self, task: Task | None = None, run: TaskRun | None = None) -> dict[str, Any]:
        enclosing = [(str(e), tuple(p)) for e, p in
                     (self.execution.loop_run or {}).get("outputsFrom") or []]
        context = build_context(self.flow, self.execution, task, run,
                                outputs=StoredOutputs(self.store, self.execution.id,
                                                      self.flow.index,
                                                      run.value_path if run else (),
                                                      enclosing))
        context["kv"] = kv_template_function(self.store, self.flow.namespace)
        return context


class _Control(FlowControl):
    """What a flowable sees of the engine while it decides."""

    def __init__(self, engine: Engine, task: FlowableTask, run: TaskRun) -> None:
        self._engine = engine
        self._task = task
        self._run = run

    def render(self, value: Any, field: str) -> Any:
        return render(value, self._engine.context(self._task, self._run),
                      field=f"{self._task.id}.{field}",
                      secrets=self._engine.runtime.settings.secrets)

    def run_block(self, block: str, *, window: int = 1) -> None:
        self._engine._run_block(self._task, self._run.id, block, window, Scope.under(self._run))

    def run_each(self, block: str, values: list[str], *, window: int = 1) -> None:
        self._engine._run_each(self._task, self._run, block, values, window)

    def run_isolated(self, values: list[str], *, window: int = 0,
                     store_outputs: bool = False) -> None:
        self._engine._run_isolated(self._task, self._run, values, window, store_outputs)

    def read_lines(self, uri: str, limit: int) -> list[str]:
        storage = storage_for(self._engine.runtime.settings.storage_root)
        try:
            check_readable_by(self._engine.execution, uri)
            with storage.open(uri) as stream:
                lines: list[str] = []
                while len(lines) < limit:
                    # Bounded: a file of one endless line is refused, not held in memory.
                    line = stream.readline(_MAX_LINE + 1)
                    if not line:
                        break
                    if len(line) > _MAX_LINE:
                        raise HarrierError(f"{uri}: line {len(lines) + 1} is longer than "
                                           f"{_MAX_LINE // 1024} KiB")
                    lines.append(line.decode("utf-8", "replace").rstrip("\r\n"))
                return lines
        except StorageError as exc:
            raise HarrierError(str(exc)) from None

    def set_outputs(self, outputs: dict[str, Any]) -> None:
        self._run.outputs.update(outputs)
        self._engine.store.save_task_run(self._run)

    def run_iteration(self, block: str, iteration: int, *, delay: float = 0) -> None:
        if delay <= 0:
            self._engine._next_iteration(self._run.id, block, iteration)
            return
        engine = self._engine
        publish([advance_message(engine.flow_ref, engine.execution.id, "next_iteration",
                                 task_id=self._run.id, block=block, iteration=iteration)],
                countdown=delay)

    def elapsed(self) -> timedelta:
        return now() - (self._run.state.start_date or now())

    def log(self, level: str, message: str) -> None:
        self._engine.store.append_log(LogEntry(
            self._engine.execution.id, self._run.id, self._task.id, level, message))

    def start_counter(self, name: str, total: int) -> None:
        self._engine.store.start_block(self._engine._block_ref(self._run.id, name), total, 0)

    def reset_counter(self, name: str, markers: list[str]) -> None:
        ref = self._engine._block_ref(self._run.id, name)
        self._engine.store.set_block_progress(ref, None)
        self._engine.store.reset_task_runs(self._engine.execution.id,
                                           [f"{self._run.id}#{name}#{m}" for m in markers])

    def count(self, name: str, marker: str, state: State) -> BlockProgress | None:
        return self._engine.store.end_block_item(
            self._engine._block_ref(self._run.id, name), f"{self._run.id}#{name}#{marker}",
            state, may_continue=False)

    def end(self, state: State, error: str | None = None) -> None:
        self._engine._end_flowable(self._task, self._run, state, error)

    def fail(self, message: str) -> None:
        self._engine.store.append_log(LogEntry(
            self._engine.execution.id, self._run.id, self._task.id, "ERROR", message))
        self.end(State.FAILED, message)
