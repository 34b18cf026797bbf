"""Compile a flow's task tree into a Celery canvas: a list of tasks is a
chain, Parallel a group (a chord, since its closing step follows), a leaf an
immutable signature routed to its worker group's queue."""

from __future__ import annotations

from celery import chain, group
from celery.canvas import Signature

from common.flow import Flow
from common.task import Task

DEFAULT_QUEUE = "default"


def queue_for(task: Task) -> str:
    return task.worker_group.key if task.worker_group else DEFAULT_QUEUE


def compile_tasks(tasks: list[Task], execution_id: str, phase: str) -> Signature | None:
    """A list of tasks runs in order; disabled tasks are left out, as in Kestra."""
    steps = [compile_task(task, execution_id, phase) for task in tasks if not task.disabled]
    if not steps:
        return None
    return steps[0] if len(steps) == 1 else chain(*steps)


def compile_task(task: Task, execution_id: str, phase: str) -> Signature:
    from worker.celery_tasks import decide, end_flowable, run_task
    from worker.tasks.parallel import Parallel
    from worker.tasks.sequential import Sequential

    close = end_flowable.si(execution_id, task.id)
    if isinstance(task, Parallel):
        branches = [compile_task(child, execution_id, phase)
                    for child in task.tasks if not child.disabled]
        if not branches:
            return close
        size = task.concurrent or len(branches)
        # `concurrent: N` runs the branches N at a time: groups of N, one after another.
        waves = [group(branches[i:i + size]) for i in range(0, len(branches), size)]
        return chain(*waves, close)
    if isinstance(task, Sequential):
        body = compile_tasks(task.tasks, execution_id, phase)
        return chain(body, close) if body is not None else close
    if task.is_flowable:
        return decide.si(execution_id, task.id, phase)
    return run_task.si(execution_id, task.id, phase).set(queue=queue_for(task))


def compile_flow(flow: Flow, execution_id: str) -> Signature:
    """The whole execution: the flow's tasks, then the finisher.

    When the flow ends with a plain task, that task finishes the execution
    itself: one Celery round trip less per execution, which is most of the
    cost of a one-task flow.
    """
    from worker.celery_tasks import finish_execution, run_task

    tasks = [t for t in flow.tasks if not t.disabled]
    last = tasks[-1] if tasks else None
    if last is not None and not last.is_flowable:
        tail = run_task.si(execution_id, last.id, "main", finish=True).set(
            queue=queue_for(last))
        body = compile_tasks(tasks[:-1], execution_id, "main")
        return chain(body, tail) if body is not None else tail
    body = compile_tasks(tasks, execution_id, "main")
    finish = finish_execution.si(execution_id, "main")
    return chain(body, finish) if body is not None else finish
