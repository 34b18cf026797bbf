"""The execution store contract: flows by revision, executions, task runs and
logs. Two implementations share it: MemoryStore (embedded) and RedisStore."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from harrier.common.execution import Execution, LogEntry, TaskRun
from harrier.common.state import State


@dataclass(frozen=True)
class FlowRecord:
    namespace: str
    flow_id: str
    revision: int
    source: str
    updated: datetime


@dataclass(frozen=True)
class ExecutionQuery:
    namespace: str | None = None
    flow_id: str | None = None
    states: tuple[State, ...] = ()
    start_after: datetime | None = None
    start_before: datetime | None = None
    limit: int = 25
    offset: int = 0


class ExecutionStore(Protocol):
    # -- flows, kept by revision so an execution always runs the source it began with
    def put_flow(self, namespace: str, flow_id: str, source: str) -> FlowRecord: ...
    def get_flow(self, namespace: str, flow_id: str,
                 revision: int | None = None) -> FlowRecord: ...
    def list_flows(self) -> list[FlowRecord]: ...
    def flow_revisions(self, namespace: str, flow_id: str) -> list[FlowRecord]: ...
    def delete_flow(self, namespace: str, flow_id: str) -> None: ...

    # -- executions
    def create_execution(self, execution: Execution) -> None: ...
    def get_execution(self, execution_id: str) -> Execution: ...
    def execution_state(self, execution_id: str) -> State: ...
    def change_execution_state(self, execution_id: str, new: State, *,
                               error: str | None = None,
                               only_from: tuple[State, ...] = ()) -> bool: ...
    def set_execution_outputs(self, execution_id: str, outputs: dict) -> None: ...
    # A failed task halts the execution: tasks not yet started are skipped.
    def halt_execution(self, execution_id: str, reason: str) -> None: ...
    def gate(self, execution_id: str) -> tuple[State, bool]: ...  # (state, halted)
    def search_executions(self, query: ExecutionQuery) -> tuple[list[Execution], int]: ...
    def delete_execution(self, execution_id: str) -> None: ...
    def wait_terminal(self, execution_id: str, timeout: float) -> Execution: ...

    # -- task runs: one record each, so parallel branches never write the same key
    # `start_execution`: in the same step, move the execution from CREATED,
    # QUEUED or RESTARTED to RUNNING. A run created RUNNING records its first heartbeat.
    def get_or_create_task_run(self, execution_id: str, task_run: TaskRun, *,
                               start_execution: bool = False) -> TaskRun: ...
    def save_task_run(self, task_run: TaskRun) -> None: ...  # RUNNING: also a heartbeat
    def task_runs(self, execution_id: str) -> list[TaskRun]: ...
    def reset_task_runs(self, execution_id: str, task_run_ids: list[str]) -> None: ...
    # Heartbeats of running attempts: a redelivered task whose attempt still
    # beats is a duplicate (the broker's visibility timeout passed), not a loss.
    def beat(self, execution_id: str, task_run_id: str) -> None: ...
    def last_beat(self, execution_id: str, task_run_id: str) -> datetime | None: ...

    # -- logs, ordered per execution
    def append_log(self, entry: LogEntry) -> str: ...
    def read_logs(self, execution_id: str, after: str | None = None, *,
                  limit: int = 1000, block: float | None = None) -> list[LogEntry]: ...

    def ping(self) -> None: ...
    def close(self) -> None: ...


# Called with the execution after any change that may make it terminal.
ExecutionListener = Callable[[Execution], None]
