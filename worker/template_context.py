"""The variables a task's templates see: flow, execution, inputs, outputs of
earlier tasks, vars, trigger, taskrun, task, labels, as Kestra names them.

Outputs are read from the store when a template names them, so rendering a
task costs the same in a flow of ten tasks as in a flow of ten thousand."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

from harrier.common.execution import ITEM_MARK, Execution, TaskRun, loop_item, plain_values
from harrier.common.flow import Flow
from harrier.common.flow_index import FlowIndex
from harrier.common.inputs import coerce_inputs
from harrier.common.state import State
from harrier.common.store import ExecutionStore
from harrier.common.task import FlowableTask, Task
from harrier.common.templating import KestraDateTime, LazyMapping

_DONE = (State.SUCCESS, State.WARNING, State.FAILED)


def outputs_of(task_runs: list[TaskRun]) -> dict[str, Any]:
    """Kestra's `outputs` from task runs: by task id, and inside loops by the
    value of each loop, outermost first (`outputs.child[outer][inner]`)."""
    outputs: dict[str, Any] = {}
    for run in task_runs:
        if run.state.current in _DONE or run.outputs:
            path = plain_values(run.value_path)  # a LoopUntil's latest iteration wins
            if not path:
                outputs[run.task_id] = run.outputs
                continue
            level = outputs.setdefault(run.task_id, {})
            for value in path[:-1]:
                level = level.setdefault(value, {})
            level[path[-1]] = run.outputs
    return outputs


class _LoopOutputs(LazyMapping):
    """The outputs of a task inside loops, by loop value, read one value at a time."""

    def __init__(self, store: ExecutionStore, execution_id: str, task_id: str, depth: int,
                 values: tuple[str, ...] = ()) -> None:
        self._store = store
        self._execution_id = execution_id
        self._task_id = task_id
        self._depth = depth
        self._values = values
        self._path = "outputs." + task_id + "".join(f"[{v!r}]" for v in values)
        self._everything: dict[str, Any] | None = None

    def __getitem__(self, value: object) -> Any:
        values = (*self._values, loop_value_text(value))
        if len(values) < self._depth:
            return _LoopOutputs(self._store, self._execution_id, self._task_id, self._depth,
                                values)
        run = self._store.find_task_run(self._execution_id, self._task_id, values)
        if run is None or not (run.state.current in _DONE or run.outputs):
            raise KeyError(value)
        return run.outputs

    def _all(self) -> dict[str, Any]:
        # Iterating (rare: `outputs.child | length`) reads the execution's runs once.
        if self._everything is None:
            found: Any = outputs_of(self._store.task_runs(self._execution_id)).get(
                self._task_id, {})
            for value in self._values:
                found = found.get(value, {})
            self._everything = found
        return self._everything

    def __iter__(self) -> Iterator[str]:
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())


def loop_value_text(value: object) -> str:
    """A loop value as Kestra keeps it: strings as they are, anything else as
    compact JSON (`1`, `{"key":"v"}`)."""
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


class StoredOutputs(LazyMapping):
    """`outputs` read from the store one task at a time (and remembered)."""

    _path = "outputs"

    def __init__(self, store: ExecutionStore, execution_id: str,
                 index: FlowIndex | None = None, path: tuple[str, ...] = (),
                 enclosing: list[tuple[str, tuple[str, ...]]] | None = None) -> None:
        self._store = store
        self._execution_id = execution_id
        self._index = index
        # In a Loop's iteration (an execution of its own): the executions around
        # it, closest first, with the value path of the loop there. Kestra reads
        # the outputs of tasks outside the iteration from its parent execution.
        self._enclosing = enclosing or []
        # The value path of the run whose templates read: inside a Kestra 2.0
        # Loop's iteration, `outputs.task` is the same iteration's run.
        self._items = tuple(plain_values(path))
        self._found: dict[str, Any] = {}
        self._everything: dict[str, Any] | None = None

    def __getitem__(self, task_id: str) -> Any:
        if task_id in self._found:
            return self._found[task_id]
        if self._everything is not None:
            return self._everything[task_id]
        try:
            return self._own(task_id)
        except KeyError:
            for execution_id, path in self._enclosing:
                try:
                    found = StoredOutputs(self._store, execution_id, self._index, path)[task_id]
                except KeyError:
                    continue
                self._found[task_id] = found
                return found
            raise

    def _own(self, task_id: str) -> Any:
        depth = self._loop_depth(task_id)
        if depth and len(self._items) >= depth and all(
                element.startswith(ITEM_MARK) for element in self._items[:depth]):
            run = self._store.find_task_run(self._execution_id, task_id, self._items[:depth])
            if run is None or not (run.state.current in _DONE or run.outputs):
                raise KeyError(task_id)
            self._found[task_id] = run.outputs
            return run.outputs
        if depth:
            self._found[task_id] = _LoopOutputs(self._store, self._execution_id, task_id, depth)
            return self._found[task_id]
        run = self._store.find_task_run(self._execution_id, task_id)
        if run is None or not (run.state.current in _DONE or run.outputs):
            raise KeyError(task_id)
        self._found[task_id] = run.outputs
        return run.outputs

    def _loop_depth(self, task_id: str) -> int:
        if self._index is None:
            return 0
        try:
            return self._index.loop_depth(task_id)
        except KeyError:
            return 0  # not a task of this flow (a disabled one): no outputs

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
        # An iteration of a Loop sees its parent's trigger, as in Kestra.
        "trigger": _trigger_variables(execution.trigger if execution.loop_run is None
                                      else execution.loop_run.get("trigger")),
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
            "iteration": task_run.iteration,
            "parentId": task_run.parent_task_run_id,
        }
        item = loop_item(task_run.value_path)
        if item is not None:
            context["item"] = item
        if task is not None and task_run.parent_task_run_id:
            parents = _parents(flow, task, task_run)
            if parents:
                context["parent"] = parents[0]
                context["parents"] = parents
    return context


def _trigger_variables(trigger: Mapping[str, Any] | None) -> dict[str, Any]:
    """`trigger` in templates. A Subflow's child keeps Kestra's {id, type,
    variables}; its templates read the variables as `trigger.executionId`..."""
    found = dict(trigger or {})
    variables = found.get("variables")
    return {**found, **variables} if isinstance(variables, Mapping) else found


def _millis(value: datetime) -> KestraDateTime:
    # Kestra keeps state dates to the millisecond (2026-12-01T13:27:00.945Z),
    # as our JSON does; templates must print the same instant.
    return KestraDateTime.of(value.replace(microsecond=value.microsecond // 1000 * 1000))


def _parents(flow: Flow, task: Task, run: TaskRun) -> list[dict[str, Any]]:
    """Kestra's `parents` (closest first; `parent` is the first): the runs of
    the flowables holding the task. A loop's direct child has the loop's value,
    found in the run's value path, so no store read is needed."""
    try:
        chain = flow.index.ancestors(task.id)
    except KeyError:
        return []
    values = plain_values(run.value_path)
    found: list[dict[str, Any]] = []
    loops_above = 0
    owner_is_loop = False
    for ancestor in chain:
        value = values[loops_above - 1] if owner_is_loop else None
        found.append({"taskrun": {"value": value}})
        owner_is_loop = isinstance(ancestor, FlowableTask) and ancestor.is_loop
        loops_above += owner_is_loop
    found.reverse()
    found[0]["taskrun"]["id"] = run.parent_task_run_id
    return found


def _typed_inputs(flow: Flow, execution: Execution) -> dict[str, Any]:
    # Inputs are stored as JSON; templates should see dates as dates again.
    if not flow.inputs:
        return dict(execution.inputs)
    known = {spec.id for spec in flow.inputs}
    given = {k: v for k, v in execution.inputs.items() if k in known and v is not None}
    typed = coerce_inputs(flow.inputs, given)
    return {k: KestraDateTime.of(v) if isinstance(v, datetime) else v for k, v in typed.items()}
