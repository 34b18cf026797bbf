"""The end of an execution: run `errors` tasks after a failure and `finally`
tasks always, then compute the final state from the task runs."""

from __future__ import annotations

from harrier.common.concurrency import release_slot
from harrier.common.errors import TemplateError
from harrier.common.execution import Execution, LogEntry
from harrier.common.state import State
from harrier.common.task import Task
from harrier.common.templating import render
from harrier.worker.runtime import Runtime
from harrier.worker.template_context import build_context


def next_phase(runtime: Runtime, execution: Execution,
               phase: str) -> tuple[str | None, list[Task]]:
    """After the tasks of `phase`: the errors or finally tasks still to run, if any."""
    state, halted = execution.state.current, execution.halted
    if state.terminated:
        return None, []
    flow = runtime.flow(execution.namespace, execution.flow_id, execution.flow_revision)
    killing = state == State.KILLING
    if phase == "main" and halted and not killing and flow.errors:
        return "errors", flow.errors
    if phase in ("main", "errors") and flow.finally_ and not killing:
        return "finally", flow.finally_
    return None, []


def final_state(state: State, halted: bool, task_states: list[State]) -> State:
    if state in (State.KILLING, State.KILLED):
        return State.KILLED
    if halted or State.FAILED in task_states:
        return State.FAILED
    if State.KILLED in task_states:
        return State.KILLED
    if State.WARNING in task_states:
        return State.WARNING
    return State.SUCCESS


def finalize(runtime: Runtime, execution: Execution) -> State:
    """Give the execution its final state (`execution` freshly loaded)."""
    store = runtime.store
    execution_id = execution.id
    state, halted = execution.state.current, bool(execution.halted)
    if state.terminated:
        # Flow concurrency: give the slot back (idempotent).
        release_slot(runtime.store, runtime.app, execution_id, load_flow=runtime.flow)
        return state
    flow = runtime.flow(execution.namespace, execution.flow_id, execution.flow_revision)
    result = final_state(state, halted, [r.state.current for r in execution.task_runs])
    error = None
    if result == State.FAILED:
        failed = [r for r in execution.task_runs if r.state.current == State.FAILED and r.error]
        error = failed[0].error if failed else None
    if flow.outputs and result in (State.SUCCESS, State.WARNING):
        context = build_context(flow, execution)
        outputs = {}
        for output in flow.outputs:
            try:
                outputs[output.id] = render(output.value, context, field=f"outputs.{output.id}",
                                            secrets=runtime.settings.secrets)
            except TemplateError as exc:
                store.append_log(LogEntry(execution_id, None, None, "ERROR", str(exc)))
                result, error = State.FAILED, str(exc)
        store.set_execution_outputs(execution_id, outputs)
    if state in (State.CREATED, State.QUEUED, State.RESTARTED) and result != State.KILLED:
        # Nothing ran (every task disabled): pass through RUNNING as Kestra does.
        store.change_execution_state(execution_id, State.RUNNING)
    store.change_execution_state(execution_id, result, error=error)
    # Flow concurrency: give the slot back and start the next queued execution.
    release_slot(runtime.store, runtime.app, execution_id, flow, runtime.flow)
    return result


def finalize_known(runtime: Runtime, execution: Execution, phase: str) -> State | None:
    """Finish an execution from the snapshot its last task ran with (`finish=True`:
    a plain task at the end of the main chain, so every other task had ended
    before it started), without loading it again. Only the plain case: nothing
    halted, no errors or finally tasks, no outputs to render, a successful end.
    The state changes only from RUNNING, so a kill meanwhile wins; None: use
    finalize on a fresh load instead."""
    if phase != "main" or execution.halted or execution.state.current.terminated:
        return None
    flow = runtime.flow(execution.namespace, execution.flow_id, execution.flow_revision)
    if flow.errors or flow.finally_ or flow.outputs:
        return None
    result = final_state(State.RUNNING, False, [r.state.current for r in execution.task_runs])
    if result not in (State.SUCCESS, State.WARNING):
        return None
    if not runtime.store.change_execution_state(execution.id, result,
                                                only_from=(State.RUNNING,)):
        return None
    # Flow concurrency: give the slot back and start the next queued execution.
    release_slot(runtime.store, runtime.app, execution.id, flow, runtime.flow)
    return result
