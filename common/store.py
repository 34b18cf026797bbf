"""The execution store contract: flows by revision, executions, task runs and
logs. Two implementations share it: MemoryStore (embedded) and RedisStore."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from harrier.common.execution import Execution, LogEntry, TaskRun
from harrier.common.kv import KVEntry
from harrier.common.state import State


@dataclass(frozen=True)
class FlowRecord:
    namespace: str
    flow_id: str
    revision: int
    source: str
    updated: datetime


@dataclass(frozen=True)
class BlockRef:
    """One run of a block of tasks: the `tasks` of the flow, the `then` of an If...
    `owner_run_id` is the flowable's task run ("" for the flow itself); `instance`
    tells the iterations of a loop apart ("" otherwise)."""

    execution_id: str
    owner_run_id: str
    block: str
    instance: str = ""

    @property
    def key(self) -> str:
        return f"{self.owner_run_id or 'flow'}/{self.block}/{self.instance}"


_WORST_FIRST = (State.KILLED, State.FAILED, State.WARNING)


@dataclass(frozen=True)
class BlockProgress:
    """Where a block run stands. Its tasks start in order, `window` at a time:
    `next` tasks were started so far, `ended` of them ended (`counts` by state).
    After a failure or a kill (`stopped`) no further task starts."""

    total: int
    next: int
    ended: int
    stopped: bool
    counts: dict[str, int]
    claimed: tuple[int, ...] = ()  # the tasks this very call started (indexes)
    # end_task_run(finish=True) ended the execution too, in this state.
    finished: State | None = None

    @property
    def done(self) -> bool:
        return self.ended >= self.next and (self.next >= self.total or self.stopped)

    @property
    def state(self) -> State:
        """The block's state from its tasks': the worst of them."""
        for state in _WORST_FIRST:
            if self.counts.get(state.value):
                return state
        return State.SUCCESS


@dataclass(frozen=True)
class ExecutionQuery:
    namespace: str | None = None
    flow_id: str | None = None
    states: tuple[State, ...] = ()
    start_after: datetime | None = None
    start_before: datetime | None = None
    # Every (key, value) must be among the execution's labels.
    labels: tuple[tuple[str, str], ...] = ()
    limit: int = 25
    offset: int = 0


class ExecutionStore(Protocol):
    # -- flows, kept by revision so an execution always runs the source it began with
    def put_flow(self, namespace: str, flow_id: str, source: str) -> FlowRecord: ...
    # The source of a one-off run (`harrier run FILE`), kept so its execution
    # runs and shows it, without deploying it: the flow's current revision and
    # triggers do not change. Its revision is negative (-1, -2 ...), or the
    # current revision when that has the same source.
    def keep_flow_source(self, namespace: str, flow_id: str, source: str) -> FlowRecord: ...
    def get_flow(self, namespace: str, flow_id: str,
                 revision: int | None = None) -> FlowRecord: ...
    def list_flows(self) -> list[FlowRecord]: ...
    def flow_revisions(self, namespace: str, flow_id: str) -> list[FlowRecord]: ...
    def delete_flow(self, namespace: str, flow_id: str) -> None: ...

    # -- executions
    def create_execution(self, execution: Execution) -> None: ...
    def get_execution(self, execution_id: str) -> Execution: ...
    def execution_state(self, execution_id: str) -> State: ...
    # Compare-and-set; `task_run` (ended) is saved in the same step if it changes.
    def change_execution_state(self, execution_id: str, new: State, *,
                               error: str | None = None,
                               only_from: tuple[State, ...] = (),
                               task_run: TaskRun | None = None) -> bool: ...
    def set_execution_outputs(self, execution_id: str, outputs: dict) -> None: ...
    # Add or change labels of an execution while it runs (execution.Labels);
    # searches by label find it under its new labels.
    def set_execution_labels(self, execution_id: str, labels: dict[str, str]) -> None: ...
    # A failed task halts the execution: tasks not yet started are skipped.
    def halt_execution(self, execution_id: str, reason: str) -> None: ...
    def gate(self, execution_id: str) -> tuple[State, bool]: ...  # (state, halted)
    def search_executions(self, query: ExecutionQuery) -> tuple[list[Execution], int]: ...
    def delete_execution(self, execution_id: str) -> None: ...
    def wait_terminal(self, execution_id: str, timeout: float) -> Execution: ...

    # The execution without its task runs (what a task's templates need), in O(1).
    def execution_head(self, execution_id: str) -> Execution: ...

    # -- task runs: one record each, so parallel branches never write the same key
    # `start_execution`: in the same step, move the execution from CREATED,
    # QUEUED or RESTARTED to RUNNING. A run created RUNNING records its first heartbeat.
    def get_or_create_task_run(self, execution_id: str, task_run: TaskRun, *,
                               start_execution: bool = False) -> TaskRun: ...
    # The same in one round trip with what a starting task needs: (the run, True
    # if this call created it, the execution's head after the call).
    def begin_task_run(self, execution_id: str, task_run: TaskRun
                       ) -> tuple[TaskRun, bool, Execution]: ...
    def save_task_run(self, task_run: TaskRun) -> None: ...  # RUNNING: also a heartbeat
    def task_run(self, execution_id: str, task_run_id: str) -> TaskRun: ...
    # The run of a task (inside loops: of its loop values, outermost first),
    # or None if it never started.
    def find_task_run(self, execution_id: str, task_id: str,
                      values: tuple[str, ...] = ()) -> TaskRun | None: ...
    def task_runs(self, execution_id: str) -> list[TaskRun]: ...
    def reset_task_runs(self, execution_id: str, task_run_ids: list[str]) -> None: ...

    # -- blocks of tasks: which of a block's tasks started and ended, updated in the
    # same atomic step as the task run that ends, so the engine knows in O(1)
    # what comes next however large the execution.
    # Start a block run: the first `window` tasks (0: all) are claimed. Starting
    # one that exists claims nothing and returns where it stands.
    def start_block(self, block: BlockRef, total: int, window: int) -> BlockProgress: ...
    # End a task run (a terminal state) and count it in its block; with
    # `may_continue`, claim the block's next task. None: the run had already ended.
    # `finish` (the flow's `tasks` of a flow with nothing to do after them): when
    # this ends the block with no failure, end the RUNNING execution in the same step.
    def end_task_run(self, task_run: TaskRun, block: BlockRef, *, may_continue: bool,
                     finish: bool = False) -> BlockProgress | None: ...
    def block_progress(self, block: BlockRef) -> BlockProgress | None: ...
    # Count one item of a block run that is not a task run (an iteration of a
    # loop) in `state`, once: a second call with the same `marker` returns None.
    def end_block_item(self, block: BlockRef, marker: str, state: State, *,
                       may_continue: bool) -> BlockProgress | None: ...
    # The values a loop runs over, kept beside its task run so that starting an
    # iteration reads one value, not the list.
    def put_loop_values(self, execution_id: str, run_id: str, values: list[str]) -> None: ...
    def loop_value(self, execution_id: str, run_id: str, index: int) -> str: ...
    # Restart: put a block run back where it stands after some of its runs reset
    # (None: forget it, so that it starts again from its first task).
    def set_block_progress(self, block: BlockRef, progress: BlockProgress | None) -> None: ...
    # Heartbeats of running attempts: a redelivered task whose attempt still
    # beats is a duplicate (the broker's visibility timeout passed), not a loss.
    def beat(self, execution_id: str, task_run_id: str) -> None: ...
    def last_beat(self, execution_id: str, task_run_id: str) -> datetime | None: ...

    # -- logs, ordered per execution
    def append_log(self, entry: LogEntry) -> str: ...
    def read_logs(self, execution_id: str, after: str | None = None, *,
                  limit: int = 1000, block: float | None = None) -> list[LogEntry]: ...
    # The `limit` entries just before `before` (the newest when None), oldest
    # first: a log view shows its last screen without reading the whole log.
    def read_logs_before(self, execution_id: str, before: str | None = None, *,
                         limit: int = 1000) -> list[LogEntry]: ...
    def count_logs(self, execution_id: str) -> int: ...

    # -- the KV store (common/kv.py): expired entries read as absent
    def kv_put(self, entry: KVEntry) -> None: ...
    def kv_get(self, namespace: str, key: str) -> KVEntry | None: ...
    def kv_list(self, namespace: str) -> list[KVEntry]: ...
    def kv_delete(self, namespace: str, key: str) -> bool: ...

    def ping(self) -> None: ...
    def close(self) -> None: ...


# Called with the execution after any change that may make it terminal.
ExecutionListener = Callable[[Execution], None]
