"""Create executions (validate inputs, pin the flow revision, store) and start
them by sending their first message to Celery. Both layers do it: the
scheduler for triggers and the API, a worker for a Subflow's child."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from celery import Celery

from harrier.common.concurrency import admit_execution
from harrier.common.dispatch import FlowRef, publish, run_task_message, start_messages
from harrier.common.execution import Execution, new_id
from harrier.common.flow import Flow
from harrier.common.inputs import InputType, coerce_inputs, inputs_to_json
from harrier.common.metrics import recorder
from harrier.common.state import State, StateRecord
from harrier.common.store import BlockRef, ExecutionStore

CORRELATION_ID = "system.correlationId"


def create_execution(store: ExecutionStore, flow: Flow, inputs: Mapping[str, Any] | None = None,
                     *, trigger: dict[str, Any] | None = None,
                     labels: Mapping[str, str] | None = None,
                     execution_id: str | None = None, deploy: bool = True,
                     revision: int | None = None) -> Execution:
    """Validate `inputs` against the flow (InputError lists every problem) and
    store a CREATED execution pinned to the flow's current source revision
    (`execution_id`: the id a tick's claim recorded for it, else a new one).
    `deploy=False` (a one-off run of a file) keeps the source for the execution
    without making it the flow's current revision (its triggers stay unarmed).
    `revision`: the flow was just read from the store at that revision, so
    there is nothing to store (one round trip less)."""
    typed = coerce_inputs(flow.inputs, dict(inputs or {}))
    if revision is None:
        revision = (store.put_flow if deploy else store.keep_flow_source)(
            flow.namespace, flow.id, flow.source).revision
    execution_id = execution_id or new_id()
    # Kestra labels every execution with the id of the execution that started
    # its chain (itself, unless a caller passes one on).
    all_labels = {**flow.labels, **(labels or {})}
    all_labels.setdefault(CORRELATION_ID, execution_id)
    execution = Execution(
        id=execution_id, namespace=flow.namespace, flow_id=flow.id,
        flow_revision=revision, inputs=inputs_to_json(typed), labels=all_labels,
        state=StateRecord.start(State.CREATED), trigger=trigger,
        secret_inputs=[spec.id for spec in flow.inputs if spec.type == InputType.SECRET])
    store.create_execution(execution)
    recorder().execution_started(flow.namespace, flow.id, trigger)
    return execution


def start_execution(app: Celery, flow: Flow, execution: Execution, *,
                    store: ExecutionStore) -> None:
    # Flow concurrency (common/concurrency.py): past the limit the execution
    # is queued, cancelled or failed instead.
    if flow.concurrency is not None and not admit_execution(app, flow, execution, store):
        return
    ref = FlowRef(execution.namespace, execution.flow_id, execution.flow_revision)
    publish(start_messages(store, flow, ref, execution.id))


def resume_start(app: Celery, flow: Flow, execution: Execution, *,
                 store: ExecutionStore) -> None:
    """Start a CREATED execution whose starter may have died half-way: its first
    block may be claimed with the first task's message never sent. Sending a
    message twice is safe (a second delivery finds the run started)."""
    ref = FlowRef(execution.namespace, execution.flow_id, execution.flow_revision)
    tasks = flow.index.block(None, "tasks")
    progress = store.block_progress(BlockRef(execution.id, "", "tasks"))
    if progress is None or not tasks or tasks[0].is_flowable:
        start_execution(app, flow, execution, store=store)  # nothing was started
        return
    if flow.concurrency is not None and not admit_execution(app, flow, execution, store):
        return
    publish([run_task_message(ref, execution.id, task, None) for task in tasks[:progress.next]
             if store.find_task_run(execution.id, task.id) is None])
