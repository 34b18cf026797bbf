"""The link between a Subflow task and its child execution: the child carries
its parent in Kestra's `trigger` (type Subflow, variables executionId,
taskRunId ...); the parent's run carries the child's `executionId` in its
outputs. When the child ends, its finisher tells the parent (`subflow_ended`),
which ends the waiting run as Kestra's ExecutableUtils.guessState says."""

from __future__ import annotations

from typing import Any

from harrier.common.dispatch import FlowRef, advance_message, publish
from harrier.common.errors import ExecutionNotFound
from harrier.common.execution import Execution
from harrier.common.state import State
from harrier.common.store import ExecutionStore

SUBFLOW_TYPE = "io.kestra.plugin.core.flow.Subflow"
SUBFLOW_ENDED = "subflow_ended"
# An iteration of a Kestra 2.0 Loop (an execution of its own) has ended.
LOOP_ENDED = "loop_ended"


def parent_of(execution: Execution) -> tuple[FlowRef, str, str] | None:
    """(parent flow, parent execution id, parent task run id) of a Subflow's child."""
    trigger = execution.trigger or {}
    if trigger.get("type") != SUBFLOW_TYPE:
        return None
    variables = trigger.get("variables") or {}
    try:
        ref = FlowRef(str(variables["namespace"]), str(variables["flowId"]),
                      int(variables["flowRevision"]))
        return ref, str(variables["executionId"]), str(variables["taskRunId"])
    except (KeyError, TypeError, ValueError):
        return None


def notify_parent(execution: Execution) -> None:
    """`execution` ended: if a Subflow or a Loop started it, tell the parent (a
    no-op there when the parent did not wait, or its run ended already)."""
    loop_run = execution.loop_run
    if loop_run is not None:
        ref = FlowRef(execution.namespace, execution.flow_id, execution.flow_revision)
        publish([advance_message(ref, str(loop_run["parentId"]), LOOP_ENDED,
                                 task_id=str(loop_run["taskRunId"]), child=execution.id)])
        return
    parent = parent_of(execution)
    if parent is None:
        return
    ref, parent_id, run_id = parent
    publish([advance_message(ref, parent_id, SUBFLOW_ENDED, task_id=run_id,
                             child=execution.id)])


def subflow_result(store: ExecutionStore, child_id: str, *, transmit_failed: bool,
                   allow_failure: bool, allow_warning: bool
                   ) -> tuple[State, dict[str, Any], str | None]:
    """The state, outputs and error of the parent's run once the child ended."""
    try:
        child = store.get_execution(child_id)
    except ExecutionNotFound:
        return State.FAILED, {"executionId": child_id}, f"subflow execution {child_id} is gone"
    ended = child.state.current
    outputs: dict[str, Any] = {"executionId": child.id, "state": ended.value}
    if child.outputs:
        outputs["outputs"] = child.outputs
    state = State.SUCCESS
    if transmit_failed and ended in (State.FAILED, State.PAUSED, State.KILLED, State.WARNING):
        state = State.WARNING if allow_failure and ended == State.FAILED else ended
        if state == State.WARNING and allow_warning:
            state = State.SUCCESS
    error = None
    if state in (State.FAILED, State.KILLED):
        error = (f"subflow execution {child.id} of {child.namespace}.{child.flow_id} "
                 f"ended {ended.value}" + (f": {child.error}" if child.error else ""))
    return state, outputs, error
