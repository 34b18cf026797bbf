"""The variables a task's templates see: flow, execution, inputs, outputs of
earlier tasks, vars, trigger, taskrun, task, labels, as Kestra names them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from harrier.common.execution import Execution, TaskRun
from harrier.common.flow import Flow
from harrier.common.inputs import coerce_inputs
from harrier.common.state import State
from harrier.common.task import Task
from harrier.common.templating import KestraDateTime

_DONE = (State.SUCCESS, State.WARNING, State.FAILED)


def build_context(flow: Flow, execution: Execution, task: Task | None = None,
                  task_run: TaskRun | None = None) -> dict[str, Any]:
    outputs: dict[str, Any] = {}
    for run in execution.task_runs:
        if run.state.current in _DONE or run.outputs:
            if run.value is None:
                outputs[run.task_id] = run.outputs
            else:
                # Kestra: outputs of a task in a ForEach are keyed by the value.
                outputs.setdefault(run.task_id, {})[run.value] = run.outputs
    start = KestraDateTime.of(execution.start_date)
    context: dict[str, Any] = {
        "flow": {"id": flow.id, "namespace": flow.namespace,
                 "revision": execution.flow_revision, "description": flow.description},
        "execution": {"id": execution.id, "startDate": start,
                      "state": execution.state.current.value, "originalId": execution.id},
        "inputs": _typed_inputs(flow, execution),
        "outputs": outputs,
        "vars": dict(flow.variables),
        "trigger": dict(execution.trigger or {}),
        "labels": dict(execution.labels),
    }
    if task is not None:
        context["task"] = {"id": task.id, "type": task.type}
    if task_run is not None:
        started = task_run.state.start_date
        context["taskrun"] = {
            "id": task_run.id,
            "startDate": KestraDateTime.of(started) if started else start,
            # Kestra counts attempts made before this one: 0 on the first attempt.
            "attemptsCount": max(0, len(task_run.attempts) - 1),
            "value": task_run.value,
        }
    return context


def _typed_inputs(flow: Flow, execution: Execution) -> dict[str, Any]:
    # Inputs are stored as JSON; templates should see dates as dates again.
    if not flow.inputs:
        return dict(execution.inputs)
    known = {spec.id for spec in flow.inputs}
    given = {k: v for k, v in execution.inputs.items() if k in known and v is not None}
    typed = coerce_inputs(flow.inputs, given)
    return {k: KestraDateTime.of(v) if isinstance(v, datetime) else v for k, v in typed.items()}
