"""Compile a flow's task tree into a Celery canvas: a list of tasks is a
chain, Parallel a group (a chord, since its closing step follows), a leaf an
immutable signature routed to its worker group's queue.

Both layers need it (the scheduler to start an execution, the worker to
expand If/Switch branches), so it names the worker's Celery tasks by their
registered names instead of importing them."""

from __future__ import annotations

from typing import Any

from celery import chain, group
from celery.canvas import Signature

from harrier.common.celery_app import app
from harrier.common.flow import Flow
from harrier.common.task import FlowableTask, Task

DEFAULT_QUEUE = "default"

# The Celery tasks harrier.worker.celery_tasks registers under these names.
RUN_TASK = "harrier.run_task"
DECIDE = "harrier.decide"
END_FLOWABLE = "harrier.end_flowable"
FINISH_EXECUTION = "harrier.finish_execution"


def _step(name: str, *args: Any, **kwargs: Any) -> Signature:
    return app.signature(name, args=args, kwargs=kwargs, immutable=True)


def queue_for(task: Task) -> str:
    return task.worker_group.key if task.worker_group else DEFAULT_QUEUE


def compile_tasks(tasks: list[Task], execution_id: str, phase: str) -> Signature | None:
    """A list of tasks runs in order; disabled tasks are left out, as in Kestra."""
    steps = [compile_task(task, execution_id, phase) for task in tasks if not task.disabled]
    if not steps:
        return None
    return steps[0] if len(steps) == 1 else chain(*steps)


def compile_task(task: Task, execution_id: str, phase: str) -> Signature:
    close = _step(END_FLOWABLE, execution_id, task.id)
    layout = task.layout if isinstance(task, FlowableTask) else "leaf"
    if layout == "parallel":
        branches = [compile_task(child, execution_id, phase)
                    for _, child in task.children() if not child.disabled]
        if not branches:
            return close
        size = getattr(task, "concurrent", 0) or len(branches)
        # `concurrent: N` runs the branches N at a time: groups of N, one after another.
        waves = [group(branches[i:i + size]) for i in range(0, len(branches), size)]
        return chain(*waves, close)
    if layout == "sequence":
        body = compile_tasks([child for _, child in task.children()], execution_id, phase)
        return chain(body, close) if body is not None else close
    if layout == "decide":
        return _step(DECIDE, execution_id, task.id, phase)
    return _step(RUN_TASK, execution_id, task.id, phase).set(queue=queue_for(task))


def compile_flow(flow: Flow, execution_id: str) -> Signature:
    """The whole execution: the flow's tasks, then the finisher.

    When the flow ends with a plain task, that task finishes the execution
    itself: one Celery round trip less per execution, which is most of the
    cost of a one-task flow.
    """
    tasks = [t for t in flow.tasks if not t.disabled]
    last = tasks[-1] if tasks else None
    if last is not None and not last.is_flowable:
        tail = _step(RUN_TASK, execution_id, last.id, "main", finish=True).set(
            queue=queue_for(last))
        body = compile_tasks(tasks[:-1], execution_id, "main")
        return chain(body, tail) if body is not None else tail
    body = compile_tasks(tasks, execution_id, "main")
    finish = _step(FINISH_EXECUTION, execution_id, "main")
    return chain(body, finish) if body is not None else finish
