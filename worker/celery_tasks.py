"""The Celery task bodies: thin wrappers that call worker.execute (one task
attempt) or the engine, and turn the outcome into Celery actions (retry with
a countdown, stand by as a watching copy)."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from celery import Task as CeleryTask
from celery.exceptions import Ignore

from harrier.common.celery_app import SENT_AT_HEADER, app
from harrier.common.dispatch import ADVANCE, RUN_TASK, FlowRef
from harrier.common.metrics import recorder
from harrier.common.state import State, transition
from harrier.worker.engine import Engine
from harrier.worker.execute import execute_task
from harrier.worker.kill_watch import lease_seconds
from harrier.worker.pauses import PAUSE_EXPIRED, pause_expired
from harrier.worker.rerun import rerun_failed
from harrier.worker.runtime import current
from harrier.worker.subflows import LOOP_ENDED, SUBFLOW_ENDED, subflow_result
from harrier.worker.tasks.for_each_item import ForEachItem
from harrier.worker.tasks.for_each_item import child_ended as for_each_item_child_ended

# Data between tasks goes through the store, never through Celery results.
_OPTIONS: dict[str, Any] = {"acks_late": True, "reject_on_worker_lost": True,
                            "ignore_result": True}


@app.task(bind=True, name=RUN_TASK, max_retries=None, **_OPTIONS)
def run_task(self: CeleryTask, execution_id: str, task_id: str, flow: list[Any],
             parent: str | None = None, value: str | None = None,
             iteration: int | None = None, values: list[str] | None = None,
             watching: bool = False) -> str:
    delivery = self.request.delivery_info or {}
    if not watching:
        recorder().task_started(delivery.get("routing_key") or "default",
                                queued_seconds(self.request))
    outcome = execute_task(current(), execution_id, task_id, FlowRef(*flow), parent=parent,
                           value=value, iteration=iteration, values=tuple(values or ()),
                           worker_id=self.request.hostname, watching=watching,
                           redelivered=bool(delivery.get("redelivered")))
    if outcome.superseded:
        raise Ignore()  # the delivery that ran the task went on from there
    if outcome.duplicate:
        # Keep a copy of the message that checks back: if the original's worker
        # dies, this copy takes over; if it finishes, this copy disappears.
        raise self.retry(countdown=lease_seconds(current().settings.task_lost_after),
                         max_retries=None,
                         kwargs={**self.request.kwargs, "watching": True})
    if outcome.retry_in is not None:
        # Celery's own retry: the same message comes back after the policy's countdown.
        raise self.retry(countdown=outcome.retry_in, max_retries=None)
    return outcome.state.value if outcome.state else "SKIPPED"


def queued_seconds(request: Any) -> float | None:
    """How long the message waited for a worker: since it was sent, or since
    its countdown ended (a retry's delay is not waiting for a worker)."""
    sent = getattr(request, SENT_AT_HEADER, None) or (request.headers or {}).get(SENT_AT_HEADER)
    if not isinstance(sent, int | float):
        return None
    ready = float(sent)
    if request.eta:
        eta = request.eta if isinstance(request.eta, datetime) else \
            datetime.fromisoformat(str(request.eta))
        ready = max(ready, eta.timestamp())
    return time.time() - ready


@app.task(name=ADVANCE, **_OPTIONS)
def advance(execution_id: str, action: str, flow: list[Any] | None = None,
            task_id: str | None = None, parent: str | None = None,
            state: str | None = None, outputs: dict[str, Any] | None = None,
            error: str | None = None, block: str | None = None,
            iteration: int | None = None, child: str | None = None) -> str:
    """Move an execution on outside of a task: `start` runs the flow's first
    block (when it begins with a flowable, or has nothing to run); after a
    restart, `start_task` starts a flowable again and `finish` goes on from the
    end of the flow's tasks (its errors and finally tasks); `complete_task`
    ends a waiting task run (`task_id` is the run) in `state`; `subflow_ended`
    ends a Subflow's waiting run after its `child` execution ended;
    `loop_ended` counts an ended iteration (`child`) of a Loop run;
    `pause_expired` ends a Pause whose pauseDuration passed."""
    engine = Engine.load(current(), execution_id)
    if action == "start":
        engine.start()
    elif action == "start_task" and task_id is not None:
        engine.start_task(task_id, parent or "")
    elif action == "finish":
        engine.finish()
    elif action == "next_iteration" and task_id is not None and block is not None \
            and iteration is not None:
        engine.next_iteration(task_id, block, iteration)
    elif action == "retry_task" and task_id is not None:
        _retry_flowable(engine, task_id)
    elif action == "complete_task" and task_id is not None and state is not None:
        engine.complete_task(task_id, State(state), outputs, error)
    elif action == PAUSE_EXPIRED and task_id is not None:
        pause_expired(engine, task_id)
    elif action == SUBFLOW_ENDED and task_id is not None and child is not None:
        _subflow_ended(engine, task_id, child)
    elif action == LOOP_ENDED and task_id is not None and child is not None:
        engine.iteration_ended(task_id, child)
    elif action == "retry_flow":
        if engine.store.change_execution_state(execution_id, State.RUNNING,
                                               only_from=(State.RETRYING,)):
            engine.execution.state.current = State.RUNNING
            rerun_failed(engine, None)
    else:
        raise ValueError(f"unknown action {action!r}")
    engine.flush()
    return engine.execution.state.current.value


def _subflow_ended(engine: Engine, run_id: str, child_id: str) -> None:
    run = engine.store.task_run(engine.execution.id, run_id)
    if run.state.current.terminated:
        return  # did not wait, or killed meanwhile
    task = engine.index.task(run.task_id)
    if isinstance(task, ForEachItem):
        result = for_each_item_child_ended(engine.store, task, run.outputs,
                                           engine.execution.id, run_id, child_id)
        if result is not None:
            engine.complete_task(run_id, *result)
        return
    state, outputs, error = subflow_result(
        engine.store, child_id, transmit_failed=getattr(task, "transmit_failed", True),
        allow_failure=task.allow_failure, allow_warning=task.allow_warning)
    engine.complete_task(run_id, state, outputs, error)


def _retry_flowable(engine: Engine, run_id: str) -> None:
    """The delay of a flowable's retry has passed: run what failed under it."""
    run = engine.store.task_run(engine.execution.id, run_id)
    if run.state.current != State.RETRYING or engine.stopping:
        return  # killed meanwhile: the kill ended it
    transition(run.state, State.RUNNING, what=f"task {run.task_id}")
    engine.store.save_task_run(run)
    rerun_failed(engine, run)
