"""The Celery task bodies: thin wrappers that call worker.execute and turn
its outcome into Celery actions (retry with countdown, replace with a branch)."""

from __future__ import annotations

import logging

from celery import Task as CeleryTask
from celery import chain
from celery.exceptions import Ignore

from harrier.common.canvas import (
    DECIDE,
    END_FLOWABLE,
    FINISH_EXECUTION,
    RUN_TASK,
    compile_tasks,
)
from harrier.common.celery_app import app
from harrier.worker import execute, finish
from harrier.worker.finish import finalize_known
from harrier.worker.kill_watch import LEASE_SECONDS
from harrier.worker.runtime import current

log = logging.getLogger(__name__)


@app.task(bind=True, name=RUN_TASK, acks_late=True, reject_on_worker_lost=True,
          max_retries=None)
def run_task(self: CeleryTask, execution_id: str, task_id: str, phase: str = "main",
             finish: bool = False, watching: bool = False) -> object:
    runtime = current()
    outcome = execute.execute_leaf(runtime, execution_id, task_id, phase,
                                   worker_id=self.request.hostname, watching=watching)
    if outcome.superseded:
        raise Ignore()  # the delivery that ran the task already moved the canvas on
    if outcome.duplicate:
        # Keep a copy of the message that checks back: if the original's worker
        # dies, this copy takes over; if it finishes, this copy disappears.
        raise self.retry(countdown=LEASE_SECONDS, max_retries=None,
                         kwargs={**self.request.kwargs, "watching": True})
    if outcome.retry_in is not None:
        # Celery's own retry: the same message comes back after the policy's
        # countdown, keeping its place in the chain or chord.
        raise self.retry(countdown=outcome.retry_in, max_retries=None)
    if finish:
        if outcome.execution is not None:
            done = finalize_known(runtime, outcome.execution, phase)
            if done is not None:
                return done.value
        return _finish(self, execution_id, phase)
    return outcome.state.value if outcome.state else "SKIPPED"


def _finish(task: CeleryTask, execution_id: str, phase: str) -> object:
    runtime = current()
    execution = runtime.store.get_execution(execution_id)
    next_phase, tasks = finish.next_phase(runtime, execution, phase)
    if next_phase is not None:
        body = compile_tasks(tasks, execution_id, next_phase)
        then = finish_execution.si(execution_id, next_phase)
        return task.replace(chain(body, then) if body is not None else then)
    return finish.finalize(runtime, execution).value


@app.task(bind=True, name=DECIDE, acks_late=True, reject_on_worker_lost=True)
def decide(self: CeleryTask, execution_id: str, task_id: str, phase: str = "main") -> object:
    runtime = current()
    outcome = execute.execute_decision(runtime, execution_id, task_id, phase)
    if outcome.branch is None:
        return outcome.state.value if outcome.state else "SKIPPED"
    close = end_flowable.si(execution_id, task_id)
    body = compile_tasks(outcome.branch, execution_id, phase)
    return self.replace(chain(body, close) if body is not None else close)


@app.task(name=END_FLOWABLE, acks_late=True, reject_on_worker_lost=True)
def end_flowable(execution_id: str, task_id: str) -> str:
    execute.end_flowable(current(), execution_id, task_id)
    return "OK"


@app.task(bind=True, name=FINISH_EXECUTION, acks_late=True,
          reject_on_worker_lost=True)
def finish_execution(self: CeleryTask, execution_id: str, phase: str = "main") -> object:
    return _finish(self, execution_id, phase)
