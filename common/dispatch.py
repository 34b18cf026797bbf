"""The messages that run an execution: one small Celery message per task to
run, routed to its worker group's queue. A message names the task, not what
follows it: when a task ends, the worker that ran it works out what comes
next from the flow (worker.engine), so a message costs the same in a flow of
ten tasks as in one of ten thousand.

Both layers publish (the scheduler starts executions, the worker continues
them), so the worker's Celery tasks are named here by their registered names."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from celery.canvas import Signature

from harrier.common.celery_app import app
from harrier.common.flow import Flow
from harrier.common.store import BlockRef, ExecutionStore
from harrier.common.task import Task

DEFAULT_QUEUE = "default"

# The Celery tasks harrier.worker.celery_tasks registers under these names.
RUN_TASK = "harrier.run_task"
ADVANCE = "harrier.advance"
# Message arguments Flower and Celery's logs show by size only (see _reprs).
_HIDDEN = frozenset({"outputs", "error"})


@dataclass(frozen=True)
class FlowRef:
    """The flow revision an execution runs: every message carries it, so a
    worker knows the task's place in the flow before it reads the store."""

    namespace: str
    flow_id: str
    revision: int

    def as_list(self) -> list[str | int]:
        return [self.namespace, self.flow_id, self.revision]


def queue_for(task: Task) -> str:
    return task.worker_group.key if task.worker_group else DEFAULT_QUEUE


def run_task_message(flow: FlowRef, execution_id: str, task: Task,
                     parent_run_id: str | None, value: str | None = None,
                     iteration: int | None = None,
                     values: tuple[str, ...] = ()) -> Signature:
    """Run one attempt of a task (not a flowable: the engine runs those inline).
    Inside loops: its loop `value` and `iteration` (a loop's direct child) and
    the `values` of the loops around it. Flower and Celery's logs show it as
    namespace.flow.task."""
    kwargs: dict[str, object] = {"flow": flow.as_list()}
    if parent_run_id:
        kwargs["parent"] = parent_run_id
    if value is not None:
        kwargs["value"] = value
    if iteration is not None:
        kwargs["iteration"] = iteration
    if values:
        kwargs["values"] = list(values)
    return app.signature(RUN_TASK, args=(execution_id, task.id), kwargs=kwargs,
                         immutable=True, queue=queue_for(task),
                         shadow=f"{flow.namespace}.{flow.flow_id}.{task.id}",
                         **_reprs((execution_id, task.id), kwargs))


def advance_message(flow: FlowRef, execution_id: str, action: str,
                    task_id: str | None = None, parent: str | None = None,
                    **details: object) -> Signature:
    """Ask a worker to move an execution on: `start` it, `start_task` (a
    flowable, after a restart), `finish` (its errors and finally tasks),
    `retry_task` (what failed under a flowable with a retry: `task_id` is its
    run), `retry_flow` (a flow-level retry)."""
    kwargs: dict[str, object] = {"flow": flow.as_list()}
    if task_id is not None:
        kwargs["task_id"] = task_id
    if parent is not None:
        kwargs["parent"] = parent
    kwargs.update(details)  # complete_task: state, outputs, error
    return app.signature(ADVANCE, args=(execution_id, action), kwargs=kwargs, immutable=True,
                         **_reprs((execution_id, action), kwargs),
                         queue=DEFAULT_QUEUE,
                         shadow=f"{flow.namespace}.{flow.flow_id}.{action}")


def _reprs(args: tuple[object, ...], kwargs: dict[str, object]) -> dict[str, str]:
    # What Celery's logs and Flower show of the arguments. Given here, Celery
    # skips its own safe-repr of every message, a third of the cost of sending one.
    # A task run's outputs and error (complete_task) may hold secrets: shown by size.
    if not _HIDDEN.intersection(kwargs):
        return {"argsrepr": repr(args), "kwargsrepr": repr(kwargs)}
    shown = ", ".join(f"{key!r}: {_hidden(value) if key in _HIDDEN else repr(value)}"
                      for key, value in kwargs.items())
    return {"argsrepr": repr(args), "kwargsrepr": f"{{{shown}}}"}


def _hidden(value: object) -> str:
    if value is None:
        return "None"
    if isinstance(value, dict):
        return f"<{len(value)} key{'' if len(value) == 1 else 's'}>"
    return f"<{len(str(value))} chars>"


def publish(messages: Iterable[Signature], *, countdown: float | None = None) -> None:
    """Send messages over one producer connection (`countdown`: seconds from now)."""
    pending = list(messages)
    if not pending:
        return
    options = {} if countdown is None else {"countdown": countdown}
    if len(pending) == 1:
        pending[0].apply_async(**options)
        return
    with app.producer_or_acquire() as producer:
        for message in pending:
            message.apply_async(producer=producer, **options)


def start_messages(store: ExecutionStore, flow: Flow, flow_ref: FlowRef,
                   execution_id: str) -> list[Signature]:
    """What starts an execution: its first task when that is a plain task (the
    flow's block claimed here, one round trip), else a worker's `start`."""
    tasks = flow.index.block(None, "tasks")
    if tasks and not tasks[0].is_flowable:
        progress = store.start_block(BlockRef(execution_id, "", "tasks"), len(tasks), 1)
        return [run_task_message(flow_ref, execution_id, tasks[i], None)
                for i in progress.claimed]
    return [advance_message(flow_ref, execution_id, "start")]
