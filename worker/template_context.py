"""The variables a task's templates see: flow, execution, inputs, outputs of
earlier tasks, vars, trigger, taskrun, task, labels, as Kestra names them.

Outputs are read from the store when a template names them, so rendering a
task costs the same in a flow of ten tasks as in a flow of ten thousand."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

from harrier.common.execution import Execution, TaskRun
from harrier.common.flow import Flow
from harrier.common.inputs import coerce_inputs
from harrier.common.state import State
from harrier.common.store import ExecutionStore
from harrier.common.task import Task
from harrier.common.templating import KestraDateTime, LazyMapping

_DONE = (State.SUCCESS, State.WARNING, State.FAILED)


def outputs_of(task_runs: list[TaskRun]) -> dict[str, Any]:
    """Kestra's `outputs` from task runs: by task id, and by value inside a loop."""
    outputs: dict[str, Any] = {}
    for run in task_runs:
        if run.state.current in _DONE or run.outputs:
            if run.value is None:
                outputs[run.task_id] = run.outputs
            else:
                outputs.setdefault(run.task_id, {})[run.value] = run.outputs
    return outputs


class StoredOutputs(LazyMapping):
    """`outputs` read from the store one task at a time (and remembered)."""

    _path = "outputs"

    def __init__(self, store: ExecutionStore, execution_id: str) -> None:
        self._store = store
        self._execution_id = execution_id
        self._found: dict[str, Any] = {}
        self._everything: dict[str, Any] | None = None

    def __getitem__(self, task_id: str) -> Any:
        if task_id in self._found:
            return self._found[task_id]
        if self._everything is not None:
            return self._everything[task_id]
        run = self._store.find_task_run(self._execution_id, task_id)
        if run is None or not (run.state.current in _DONE or run.outputs):
            raise KeyError(task_id)
        self._found[task_id] = run.outputs
        return run.outputs

    def __contains__(self, task_id: object) -> bool:
        try:
            self[str(task_id)]
        except KeyError:
            return False
        return True

    def _all(self) -> dict[str, Any]:
        # Iterating `outputs` as a whole (rare: a template listing every output)
        # reads every task run once.
        if self._everything is None:
            self._everything = outputs_of(self._store.task_runs(self._execution_id))
        return self._everything

    def __iter__(self) -> Iterator[str]:
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())


def build_context(flow: Flow, execution: Execution, task: Task | None = None,
                  task_run: TaskRun | None = None, *,
                  outputs: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """`outputs`: the outputs of earlier tasks (StoredOutputs); by default taken
    from the task runs the execution carries."""
    start = _millis(execution.start_date)
    context: dict[str, Any] = {
        "flow": {"id": flow.id, "namespace": flow.namespace,
                 "revision": execution.flow_revision, "description": flow.description},
        "execution": {"id": execution.id, "startDate": start,
                      "state": execution.state.current.value,
                      "originalId": execution.original_id or execution.id},
        "inputs": _typed_inputs(flow, execution),
        "outputs": outputs if outputs is not None else outputs_of(execution.task_runs),
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
            "startDate": _millis(started) if started else start,
            # Kestra counts attempts made before this one: 0 on the first attempt.
            "attemptsCount": max(0, len(task_run.attempts) - 1),
            "value": task_run.value,
        }
    return context


def _millis(value: datetime) -> KestraDateTime:
    # Kestra keeps state dates to the millisecond (2026-12-01T13:27:00.945Z),
    # as our JSON does; templates must print the same instant.
    return KestraDateTime.of(value.replace(microsecond=value.microsecond // 1000 * 1000))


def _typed_inputs(flow: Flow, execution: Execution) -> dict[str, Any]:
    # Inputs are stored as JSON; templates should see dates as dates again.
    if not flow.inputs:
        return dict(execution.inputs)
    known = {spec.id for spec in flow.inputs}
    given = {k: v for k, v in execution.inputs.items() if k in known and v is not None}
    typed = coerce_inputs(flow.inputs, given)
    return {k: KestraDateTime.of(v) if isinstance(v, datetime) else v for k, v in typed.items()}
