"""Create executions (validate inputs, pin the flow revision, store) and start
them by sending their first message to Celery."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from celery import Celery

from harrier.common.concurrency import admit_execution
from harrier.common.dispatch import FlowRef, publish, start_messages
from harrier.common.execution import Execution, new_id
from harrier.common.flow import Flow
from harrier.common.inputs import coerce_inputs, inputs_to_json
from harrier.common.metrics import recorder
from harrier.common.state import State, StateRecord
from harrier.common.store import ExecutionStore


def create_execution(store: ExecutionStore, flow: Flow, inputs: Mapping[str, Any] | None = None,
                     *, trigger: dict[str, Any] | None = None,
                     labels: Mapping[str, str] | None = None) -> Execution:
    """Validate `inputs` against the flow (InputError lists every problem) and
    store a CREATED execution pinned to the flow's current source revision."""
    typed = coerce_inputs(flow.inputs, dict(inputs or {}))
    record = store.put_flow(flow.namespace, flow.id, flow.source)
    execution = Execution(
        id=new_id(), namespace=flow.namespace, flow_id=flow.id, flow_revision=record.revision,
        inputs=inputs_to_json(typed), labels={**flow.labels, **(labels or {})},
        state=StateRecord.start(State.CREATED), trigger=trigger)
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
