"""Kestra 2.0's Loop runs each iteration as an execution of its own: the same
flow revision, started at the Loop's `tasks` (its `loopRun` says which loop,
iteration and value), so an iteration's task runs, logs and state are kept
apart from the parent's and from each other's.

The parent's Loop run counts its iterations in the store as they end (one
atomic step each, `concurrencyLimit` at a time, as a ForEach counts its
values), so a loop of 10,000 iterations costs each the same as a loop of ten.
Iteration ids are the loop run's id followed by the index: a redelivered
message finds the iteration it started instead of starting another."""

from __future__ import annotations

from typing import Any

from harrier.common.errors import ExecutionNotFound
from harrier.common.execution import Execution, TaskRun, loop_item
from harrier.common.state import State, StateRecord
from harrier.common.store import BlockProgress, BlockRef, ExecutionStore
from harrier.common.task import FlowableTask

# The parent's count of a Loop's iterations (as a ForEach's of its values).
ITERATIONS = "#each"


def iteration_id(run_id: str, index: int) -> str:
    """The id of iteration `index` of the Loop run `run_id`."""
    return f"{run_id}{index}"


def iteration_index(run_id: str, execution_id: str) -> int | None:
    """Which iteration of `run_id` the execution is (None: not one of its own)."""
    rest = execution_id[len(run_id):]
    if not execution_id.startswith(run_id) or not rest.isdigit():
        return None
    return int(rest)


def iteration_execution(parent: Execution, loop: FlowableTask, run: TaskRun, index: int,
                        entry: str, *, store_outputs: bool = False) -> Execution:
    """A CREATED execution for one iteration: the parent's inputs and labels,
    its trigger kept aside (templates see it; a Subflow parent is not told
    when the iteration ends), and where outputs of tasks outside are read."""
    element = loop.path_element(index, entry)
    enclosing = [[parent.id, list(run.value_path)]]
    if parent.loop_run is not None:
        enclosing.extend(parent.loop_run.get("outputsFrom") or [])
        trigger = parent.loop_run.get("trigger")
    else:
        trigger = parent.trigger
    loop_run: dict[str, Any] = {
        "parentId": parent.id, "taskRunId": run.id, "taskId": loop.id, "index": index,
        "value": loop.iteration_value(entry), "path": list(run.value_path),
        "element": element, "outputsFrom": enclosing, "trigger": trigger}
    if store_outputs:
        loop_run["storeOutputs"] = True
    key = (loop_item((element,)) or {}).get("key")  # over a map
    if key is not None:
        loop_run["key"] = key
    return Execution(
        id=iteration_id(run.id, index), namespace=parent.namespace, flow_id=parent.flow_id,
        flow_revision=parent.flow_revision, inputs=dict(parent.inputs),
        labels=dict(parent.labels), state=StateRecord.start(State.CREATED),
        secret_inputs=list(parent.secret_inputs), loop_run=loop_run)


def started_iterations(store: ExecutionStore, execution_id: str, run_id: str) -> list[str]:
    """The ids of the iterations a Loop run has started (to kill them with it)."""
    progress = store.block_progress(BlockRef(execution_id, run_id, ITERATIONS))
    if progress is None:
        return []
    return [iteration_id(run_id, index) for index in range(progress.next)]


def loop_outputs(store: ExecutionStore, run: TaskRun, progress: BlockProgress
                 ) -> dict[str, Any]:
    """The Loop run's outputs (Kestra's Loop.Output): iterationCount,
    runningIterations, terminatedIterations by state and, for the ended
    iterations that declared some, `outputs` as [{item, outputs}] in
    iteration order."""
    counts: dict[str, int] = {}
    collected: list[dict[str, Any]] = []
    for index in range(progress.next):
        try:
            child = store.get_execution(iteration_id(run.id, index))
        except ExecutionNotFound:
            continue
        if not child.state.current.terminated:
            continue
        counts[child.state.current.value] = counts.get(child.state.current.value, 0) + 1
        if not child.outputs:
            continue
        loop_run = child.loop_run or {}
        item: dict[str, Any] = {"value": loop_run.get("value"), "iteration": index}
        if loop_run.get("key") is not None:
            item["key"] = loop_run["key"]
        collected.append({"item": item, "outputs": child.outputs})
    outputs: dict[str, Any] = {"iterationCount": progress.total,
                               "runningIterations": progress.next - sum(counts.values()),
                               "terminatedIterations": counts}
    if collected:
        outputs["outputs"] = collected
    return outputs
