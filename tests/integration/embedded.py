"""Run flows in embedded mode from tests: one in-process runtime per module."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from harrier.common.execution import Execution
from harrier.common.flow import parse_flow
from harrier.common.settings import Settings
from harrier.common.state import State
from harrier.common.storage import storage_for
from harrier.scheduler.executions import create_execution, start_execution
from harrier.worker.runtime import Runtime


def run_flow_text(runtime: Runtime, text: str, inputs: dict[str, Any] | None = None,
                  timeout: float = 60) -> Execution:
    flow = parse_flow(text, "test.yaml")
    execution = create_execution(runtime.store, flow, inputs or {})
    start_execution(runtime.app, flow, execution, store=runtime.store)
    done = runtime.store.wait_terminal(execution.id, timeout)
    assert done.state.current.terminated, f"execution still {done.state.current}"
    return done


def stored_bytes(settings: Settings, uri: str) -> bytes:
    """The bytes of a file in internal storage (an outputFiles value, a Download's uri)."""
    assert uri.startswith("kestra:///"), uri
    with storage_for(settings.storage_root).open(uri) as stream:
        return stream.read()


def task_run(execution: Execution, task_id: str) -> Any:
    runs = [r for r in execution.task_runs if r.task_id == task_id]
    assert runs, f"no task run for {task_id}: {[r.task_id for r in execution.task_runs]}"
    return runs[0]


def logs(runtime: Runtime, execution: Execution, task_id: str | None = None) -> list[str]:
    return [e.message for e in runtime.store.read_logs(execution.id)
            if task_id is None or e.task_id == task_id]


def states(execution: Execution) -> dict[str, State]:
    return {r.task_id: r.state.current for r in execution.task_runs}


def wait_for(predicate: Callable[[], Any], timeout: float = 60, every: float = 0.05) -> Any:
    """Poll until `predicate` returns something truthy; fail the test after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"condition not met within {timeout} s")
