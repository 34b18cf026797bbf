"""The in-memory execution store of embedded mode: the ExecutionStore contract
behind one lock, with condition variables for live logs and completion."""

from __future__ import annotations

import bisect
import copy
import threading
from collections import defaultdict
from dataclasses import dataclass, field, replace
from datetime import datetime

from harrier.common.errors import ExecutionNotFound, FlowNotFound
from harrier.common.execution import Execution, LogEntry, TaskRun, run_key
from harrier.common.kv import KVEntry
from harrier.common.state import State, now, transition
from harrier.common.store import BlockProgress, BlockRef, ExecutionQuery, FlowRecord

_STARTABLE = (State.CREATED, State.QUEUED, State.RESTARTED)


class MemoryStore:
    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._flows: dict[tuple[str, str], list[FlowRecord]] = {}
        self._one_off: dict[tuple[str, str], list[FlowRecord]] = {}
        self._executions: dict[str, Execution] = {}
        self._kv: dict[tuple[str, str], KVEntry] = {}
        self._halted: dict[str, str] = {}
        self._deleted: set[tuple[str, str]] = set()
        self._beats: dict[tuple[str, str], datetime] = {}
        self._task_runs: dict[str, dict[str, TaskRun]] = defaultdict(dict)
        # (task id, value) -> run id, per execution: find a task's run in O(1).
        self._run_keys: dict[str, dict[str, str]] = defaultdict(dict)
        self._ended: dict[str, set[str]] = defaultdict(set)
        self._blocks: dict[str, dict[str, _Block]] = defaultdict(dict)
        self._loop_values: dict[str, dict[str, list[str]]] = defaultdict(dict)
        self._logs: dict[str, list[LogEntry]] = defaultdict(list)
        self._log_seq = 0
        # Every execution that ended, in order: the in-memory counterpart of the
        # Redis store's ended stream, read by embedded Flow triggers.
        self._ended_ids: list[str] = []

    # -- flows
    def put_flow(self, namespace: str, flow_id: str, source: str) -> FlowRecord:
        with self._lock:
            revisions = self._flows.setdefault((namespace, flow_id), [])
            was_deleted = (namespace, flow_id) in self._deleted
            self._deleted.discard((namespace, flow_id))
            if revisions and revisions[-1].source == source and not was_deleted:
                return revisions[-1]
            record = FlowRecord(namespace, flow_id, len(revisions) + 1, source, now())
            revisions.append(record)
            return record

    def keep_flow_source(self, namespace: str, flow_id: str, source: str) -> FlowRecord:
        with self._lock:
            revisions = self._flows.get((namespace, flow_id))
            if revisions and revisions[-1].source == source and \
                    (namespace, flow_id) not in self._deleted:
                return revisions[-1]
            kept = self._one_off.setdefault((namespace, flow_id), [])
            record = FlowRecord(namespace, flow_id, -(len(kept) + 1), source, now())
            kept.append(record)
            return record

    def get_flow(self, namespace: str, flow_id: str, revision: int | None = None) -> FlowRecord:
        with self._lock:
            if revision is not None and revision < 0:
                kept = self._one_off.get((namespace, flow_id), [])
                if -revision > len(kept):
                    raise FlowNotFound(f"flow {namespace}.{flow_id} has no revision {revision}")
                return kept[-revision - 1]
            revisions = self._flows.get((namespace, flow_id))
            if not revisions or (revision is None and (namespace, flow_id) in self._deleted):
                raise FlowNotFound(f"flow {namespace}.{flow_id} not found")
            if revision is None:
                return revisions[-1]
            if not 1 <= revision <= len(revisions):
                raise FlowNotFound(f"flow {namespace}.{flow_id} has no revision {revision}")
            return revisions[revision - 1]

    def list_flows(self) -> list[FlowRecord]:
        with self._lock:
            return [revs[-1] for key, revs in self._flows.items() if key not in self._deleted]

    def flow_revisions(self, namespace: str, flow_id: str) -> list[FlowRecord]:
        with self._lock:
            return list(self._flows.get((namespace, flow_id), []))

    def delete_flow(self, namespace: str, flow_id: str) -> None:
        with self._lock:
            # Revisions stay: executions created from them must still run.
            if (namespace, flow_id) not in self._flows or (namespace, flow_id) in self._deleted:
                raise FlowNotFound(f"flow {namespace}.{flow_id} not found")
            self._deleted.add((namespace, flow_id))

    # -- executions
    def create_execution(self, execution: Execution) -> None:
        with self._lock:
            self._executions[execution.id] = copy.deepcopy(execution)
            for run in execution.task_runs:
                self._task_runs[execution.id][run.id] = run.clone()
            self._changed.notify_all()

    def _get(self, execution_id: str) -> Execution:
        try:
            return self._executions[execution_id]
        except KeyError:
            raise ExecutionNotFound(f"execution {execution_id} not found") from None

    def execution_head(self, execution_id: str) -> Execution:
        with self._lock:
            execution = self._get(execution_id)
            head = copy.copy(execution)
            head.state = execution.state.clone()
            head.task_runs = []
            head.halted = self._halted.get(execution_id)
            return head

    def get_execution(self, execution_id: str) -> Execution:
        with self._lock:
            execution = copy.deepcopy(self._get(execution_id))
            execution.task_runs = self.task_runs(execution_id)
            execution.halted = self._halted.get(execution_id)
            return execution

    def execution_state(self, execution_id: str) -> State:
        with self._lock:
            return self._get(execution_id).state.current

    def gate(self, execution_id: str) -> tuple[State, bool]:
        with self._lock:
            return self._get(execution_id).state.current, execution_id in self._halted

    def halt_execution(self, execution_id: str, reason: str) -> None:
        with self._lock:
            self._halted.setdefault(execution_id, reason)

    def change_execution_state(self, execution_id: str, new: State, *, error: str | None = None,
                               only_from: tuple[State, ...] = (),
                               task_run: TaskRun | None = None) -> bool:
        if task_run is not None and not task_run.state.current.terminated:
            raise ValueError(f"task run {task_run.id} is {task_run.state.current}: only an "
                             "ended run is saved with its execution's state")
        with self._lock:
            execution = self._get(execution_id)
            current = execution.state.current
            if current == new or (only_from and current not in only_from):
                return False
            transition(execution.state, new)
            if error:
                execution.error = error
            if task_run is not None:  # under the same lock: seen together
                self._task_runs[execution_id][task_run.id] = task_run.clone()
            if new == State.RESTARTED:
                self._halted.pop(execution_id, None)
            if new.terminated:
                self._ended_ids.append(execution_id)
            self._changed.notify_all()
            return True

    def set_execution_outputs(self, execution_id: str, outputs: dict) -> None:
        with self._lock:
            self._get(execution_id).outputs = copy.deepcopy(outputs)

    def set_execution_labels(self, execution_id: str, labels: dict[str, str]) -> None:
        with self._lock:
            self._get(execution_id).labels.update(labels)
            self._changed.notify_all()

    def search_executions(self, query: ExecutionQuery) -> tuple[list[Execution], int]:
        with self._lock:
            found = [
                e for e in self._executions.values()
                if (query.namespace is None or e.namespace == query.namespace)
                and (query.flow_id is None or e.flow_id == query.flow_id)
                and (not query.states or e.state.current in query.states)
                and (query.start_after is None or e.start_date >= query.start_after)
                and (query.start_before is None or e.start_date < query.start_before)
                and all(e.labels.get(key) == value for key, value in query.labels)
            ]
            found.sort(key=lambda e: e.start_date, reverse=True)
            page = found[query.offset:query.offset + query.limit]
            return [self.get_execution(e.id) for e in page], len(found)

    def delete_execution(self, execution_id: str) -> None:
        with self._lock:
            self._get(execution_id)
            del self._executions[execution_id]
            self._task_runs.pop(execution_id, None)
            self._run_keys.pop(execution_id, None)
            self._ended.pop(execution_id, None)
            self._blocks.pop(execution_id, None)
            self._loop_values.pop(execution_id, None)
            self._logs.pop(execution_id, None)
            self._halted.pop(execution_id, None)

    def wait_terminal(self, execution_id: str, timeout: float) -> Execution:
        with self._changed:
            self._changed.wait_for(
                lambda: self._get(execution_id).state.current.terminated, timeout=timeout)
            return self.get_execution(execution_id)

    def ended_executions(self, after: int, *, block: float = 0.0) -> list[str]:
        """Ids of the executions that ended since the first `after` ends (each end
        once, in order; an execution restarted and ended again is there twice),
        waiting up to `block` seconds for a change of the store (maybe none)."""
        with self._changed:
            if block > 0 and len(self._ended_ids) <= after:
                self._changed.wait(block)
            return self._ended_ids[after:]

    def wake_waiters(self) -> None:
        """Wake every thread blocked reading the store (one is stopping)."""
        with self._changed:
            self._changed.notify_all()

    # -- task runs
    def get_or_create_task_run(self, execution_id: str, task_run: TaskRun, *,
                               start_execution: bool = False) -> TaskRun:
        with self._lock:
            execution = self._get(execution_id)
            if start_execution and execution.state.current in _STARTABLE:
                transition(execution.state, State.RUNNING)
                self._changed.notify_all()
            keys = self._run_keys[execution_id]
            existing = keys.get(task_run.key)
            if existing is not None:
                return self._task_runs[execution_id][existing].clone()
            keys[task_run.key] = task_run.id
            if task_run.latest_key is not None:
                keys[task_run.latest_key] = task_run.id
            self._task_runs[execution_id][task_run.id] = task_run.clone()
            if task_run.state.current == State.RUNNING:
                self._beats[(execution_id, task_run.id)] = now()
            return task_run.clone()

    def begin_task_run(self, execution_id: str, task_run: TaskRun
                       ) -> tuple[TaskRun, bool, Execution]:
        with self._lock:
            run = self.get_or_create_task_run(execution_id, task_run, start_execution=True)
            return run, run.id == task_run.id, self.execution_head(execution_id)

    def task_run(self, execution_id: str, task_run_id: str) -> TaskRun:
        with self._lock:
            try:
                return self._task_runs[execution_id][task_run_id].clone()
            except KeyError:
                raise ExecutionNotFound(f"task run {task_run_id} of execution "
                                        f"{execution_id} not found") from None

    def find_task_run(self, execution_id: str, task_id: str,
                      values: tuple[str, ...] = ()) -> TaskRun | None:
        with self._lock:
            run_id = self._run_keys.get(execution_id, {}).get(run_key(task_id, values))
            if run_id is None:
                return None
            return self._task_runs[execution_id][run_id].clone()

    def save_task_run(self, task_run: TaskRun) -> None:
        with self._lock:
            self._task_runs[task_run.execution_id][task_run.id] = task_run.clone()
            if not task_run.state.current.terminated:
                self._ended[task_run.execution_id].discard(task_run.id)  # reopened
            if task_run.state.current == State.RUNNING:
                self._beats[(task_run.execution_id, task_run.id)] = now()
            self._changed.notify_all()

    def task_runs(self, execution_id: str) -> list[TaskRun]:
        with self._lock:
            runs = self._task_runs.get(execution_id, {}).values()
            return sorted((r.clone() for r in runs), key=_started)

    def reset_task_runs(self, execution_id: str, task_run_ids: list[str]) -> None:
        with self._lock:
            runs = self._task_runs.get(execution_id, {})
            keys = self._run_keys.get(execution_id, {})
            for run_id in task_run_ids:
                run = runs.pop(run_id, None)
                if run is not None:
                    keys.pop(run.key, None)
                self._ended[execution_id].discard(run_id)

    # -- blocks
    def start_block(self, block: BlockRef, total: int, window: int) -> BlockProgress:
        with self._lock:
            blocks = self._blocks[block.execution_id]
            existing = blocks.get(block.key)
            if existing is not None:
                return existing.progress()
            width = total if window <= 0 or window > total else window
            started = blocks[block.key] = _Block(total=total, next=width)
            return started.progress(tuple(range(width)))

    def end_task_run(self, task_run: TaskRun, block: BlockRef, *, may_continue: bool,
                     finish: bool = False) -> BlockProgress | None:
        with self._lock:
            ended = self._ended[task_run.execution_id]
            if task_run.id in ended:
                return None
            self._task_runs[task_run.execution_id][task_run.id] = task_run.clone()
            self._beats.pop((task_run.execution_id, task_run.id), None)
            self._changed.notify_all()
            return self._count(block, task_run.id, task_run.state.current, may_continue, finish)

    def end_block_item(self, block: BlockRef, marker: str, state: State, *,
                       may_continue: bool) -> BlockProgress | None:
        with self._lock:
            if marker in self._ended[block.execution_id]:
                return None
            return self._count(block, marker, state, may_continue, False)

    def _count(self, block: BlockRef, marker: str, state: State, may_continue: bool,
               finish: bool) -> BlockProgress:
        self._ended[block.execution_id].add(marker)
        counters = self._blocks[block.execution_id].setdefault(block.key, _Block(0, 0))
        counters.ended += 1
        counters.counts[state.value] = counters.counts.get(state.value, 0) + 1
        if state in (State.FAILED, State.KILLED):
            counters.stopped = True
        claimed: tuple[int, ...] = ()
        if may_continue and not counters.stopped and counters.next < counters.total:
            claimed = (counters.next,)
            counters.next += 1
        progress = counters.progress(claimed)
        execution = self._executions.get(block.execution_id)
        if finish and progress.done and progress.state in (State.SUCCESS, State.WARNING) \
                and execution is not None and execution.state.current == State.RUNNING:
            transition(execution.state, progress.state)
            self._ended_ids.append(block.execution_id)
            self._changed.notify_all()
            progress = replace(progress, finished=progress.state)
        return progress

    def put_loop_values(self, execution_id: str, run_id: str, values: list[str]) -> None:
        with self._lock:
            self._loop_values[execution_id][run_id] = list(values)

    def loop_value(self, execution_id: str, run_id: str, index: int) -> str:
        with self._lock:
            return self._loop_values[execution_id][run_id][index]

    def block_progress(self, block: BlockRef) -> BlockProgress | None:
        with self._lock:
            counters = self._blocks.get(block.execution_id, {}).get(block.key)
            return None if counters is None else counters.progress()

    def set_block_progress(self, block: BlockRef, progress: BlockProgress | None) -> None:
        with self._lock:
            if progress is None:
                self._blocks[block.execution_id].pop(block.key, None)
                return
            self._blocks[block.execution_id][block.key] = _Block(
                total=progress.total, next=progress.next, ended=progress.ended,
                stopped=progress.stopped, counts=dict(progress.counts))

    def beat(self, execution_id: str, task_run_id: str) -> None:
        with self._lock:
            self._beats[(execution_id, task_run_id)] = now()

    def last_beat(self, execution_id: str, task_run_id: str) -> datetime | None:
        with self._lock:
            return self._beats.get((execution_id, task_run_id))

    # -- logs
    def append_log(self, entry: LogEntry) -> str:
        with self._lock:
            self._log_seq += 1
            entry = copy.copy(entry)
            entry.id = f"{self._log_seq:012d}"
            self._logs[entry.execution_id].append(entry)
            self._changed.notify_all()
            return entry.id

    def read_logs(self, execution_id: str, after: str | None = None, *, limit: int = 1000,
                  block: float | None = None) -> list[LogEntry]:
        def pending() -> list[LogEntry]:
            entries = self._logs.get(execution_id, [])
            # Ids grow with each entry: find the first one after `after` by bisection.
            start = 0 if after is None else bisect.bisect_right(entries, after,
                                                                key=lambda e: e.id)
            return entries[start:start + limit]

        def ended() -> bool:
            execution = self._executions.get(execution_id)
            return execution is None or execution.state.current.terminated

        with self._changed:
            found = pending()
            if not found and block:
                # The execution's end wakes a follower too: it need not wait out `block`.
                self._changed.wait_for(lambda: pending() or ended(), timeout=block)
                found = pending()
            return found

    def read_logs_before(self, execution_id: str, before: str | None = None, *,
                         limit: int = 1000) -> list[LogEntry]:
        with self._lock:
            entries = self._logs.get(execution_id, [])
            # Ids are zero-padded counters: the list is sorted by id.
            end = len(entries) if before is None else bisect.bisect_left(
                entries, before, key=lambda e: e.id)
            return list(entries[max(0, end - limit):end])

    def count_logs(self, execution_id: str) -> int:
        with self._lock:
            return len(self._logs.get(execution_id, []))

    # -- the KV store
    def kv_put(self, entry: KVEntry) -> None:
        with self._lock:
            self._kv[(entry.namespace, entry.key)] = entry

    def kv_get(self, namespace: str, key: str) -> KVEntry | None:
        with self._lock:
            entry = self._kv.get((namespace, key))
            if entry is not None and entry.expired:
                del self._kv[(namespace, key)]
                return None
            return entry

    def kv_list(self, namespace: str) -> list[KVEntry]:
        with self._lock:
            keys = sorted(k for ns, k in self._kv if ns == namespace)
        return [e for e in (self.kv_get(namespace, k) for k in keys) if e is not None]

    def kv_delete(self, namespace: str, key: str) -> bool:
        with self._lock:
            entry = self._kv.pop((namespace, key), None)
            return entry is not None and not entry.expired

    def ping(self) -> None:
        return None

    def close(self) -> None:
        return None


@dataclass
class _Block:
    total: int
    next: int
    ended: int = 0
    stopped: bool = False
    counts: dict[str, int] = field(default_factory=dict)

    def progress(self, claimed: tuple[int, ...] = ()) -> BlockProgress:
        return BlockProgress(total=self.total, next=self.next, ended=self.ended,
                             stopped=self.stopped, counts=dict(self.counts), claimed=claimed)


def _started(run: TaskRun) -> tuple:
    return (run.state.start_date or now(), run.id)
