"""io.kestra.plugin.core.flow.ForEachItem: split a file of the internal storage
(`items`, a kestra:// URI) into batches (`batch.rows` lines, lines up to
`batch.bytes`, or lines dealt out to `batch.partitions`), store each batch,
and start one execution of flow `namespace`.`flowId` per batch, its inputs
rendered with `taskrun.items` (the batch's URI) and `taskrun.iteration` (its
index). With `wait` the run waits without a worker slot (worker.context.Waiting)
and ends once every child has: `iterations` counts the children by state, and
`subflowOutputs` names a file of the children's outputs, one JSON line each.

Followed: Kestra's ForEachItem.java (its split / executable / merge subtasks
folded into one task run here) and StorageService.split: only kestra:// URIs
are split, `rows` defaults to 1, a `bytes` batch closes once it reached the
size, `partitions` deals lines round-robin and drops empty ones, every line
is written with a newline, one subflow per batch started at once (Kestra has
no concurrency limit on it), inputs rendered per batch with taskrun.items and
taskrun.iteration, children carry the batch index as trigger.taskRunIteration,
outputs numberOfBatches, iterations (per state) and the children's merged outputs.

Flat cost: batches are streamed from the file to storage one at a time
(partitions: through local files, memory bounded by a buffer); the
children are counted as they end by the store (one atomic step each, a block
item per child), never by reading them all; child ids are the attempt's prefix
plus the batch index, so a redelivered attempt finds what it started."""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from harrier.common.errors import ExecutionNotFound, StorageError, TaskFailed
from harrier.common.execution import Execution, new_id
from harrier.common.launch import resume_start, start_execution
from harrier.common.state import State
from harrier.common.storage import is_uri, storage_for, task_file_path, to_uri
from harrier.common.store import BlockProgress, BlockRef, ExecutionStore
from harrier.common.task import register_task
from harrier.worker.context import TaskContext, Waiting
from harrier.worker.execution_files import check_readable
from harrier.worker.runtime import current
from harrier.worker.subflows import notify_parent
from harrier.worker.tasks.subflow import Subflow

FOR_EACH_ITEM_TYPE = "io.kestra.plugin.core.flow.ForEachItem"
# One child execution per batch: a file that would make more is refused.
MAX_BATCHES = 10_000
_BLOCK = "forEachItem"
_PREFIX = len(new_id())
_UNSUPPORTED = {"separator": " (each batch holds whole lines, each ending with a newline)",
                "regexPattern": ""}
_SIZE = re.compile(r"(\d+)\s*([KMG]B)?", re.I)
_UNITS = {"": 1, "KB": 1024, "MB": 1024 ** 2, "GB": 1024 ** 3}
# partitions: rows are dealt out to every partition at once, buffered in
# memory up to this size, then appended to local files.
_PARTITION_BUFFER = 4 * 1024 * 1024


class ForEachItemBatch(BaseModel):
    """How `items` is split, one of: `rows` lines per batch (default 1);
    `bytes`, lines until a batch reaches this size ("10MB", KB/MB/GB of 1024);
    `partitions`, lines dealt out in turn to that many batches."""

    model_config = ConfigDict(defer_build=True, extra="forbid", frozen=True)
    rows: int = Field(1, ge=1)
    bytes: int | str | None = None
    partitions: int | None = Field(None, ge=1, le=MAX_BATCHES)

    @model_validator(mode="before")
    @classmethod
    def _not_yet(cls, value: object) -> object:
        if isinstance(value, dict):
            for name, why in _UNSUPPORTED.items():
                if name in value:
                    raise ValueError(f"batch.{name} is not supported yet{why}: "
                                     "split by batch.rows, bytes or partitions")
            given = [name for name in ("rows", "bytes", "partitions")
                     if value.get(name) is not None]
            if len(given) > 1:
                raise ValueError(f"batch: give one of rows, bytes or partitions, not "
                                 f"{' and '.join(given)}")
        return value

    @field_validator("bytes")
    @classmethod
    def _size(cls, value: int | str | None) -> int | str | None:
        if value is not None and bytes_of(value) < 1:
            raise ValueError("batch.bytes is at least 1 byte")
        return value


def bytes_of(value: int | str) -> int:
    """"10MB" -> 10485760 (Kestra's readable sizes: KB, MB, GB of 1024 bytes)."""
    if isinstance(value, int):
        return value
    match = _SIZE.fullmatch(value.strip())
    if match is None:
        raise ValueError(f"batch.bytes: {value!r} is not a size like 10MB, 512KB or 1000")
    return int(match.group(1)) * _UNITS[(match.group(2) or "").upper()]


@register_task(FOR_EACH_ITEM_TYPE, "io.kestra.core.tasks.flows.ForEachItem")
class ForEachItem(Subflow):
    items: str
    batch: ForEachItemBatch = ForEachItemBatch(rows=1, bytes=None, partitions=None)

    def run(self, ctx: TaskContext) -> dict[str, Any] | Waiting:
        prefix = ctx.previous_checkpoint.get("childPrefix")
        redelivered = bool(prefix)
        if not prefix:
            prefix = new_id()
            ctx.checkpoint({"childPrefix": prefix})
        target = self._target(ctx)  # an unknown flow fails before any batch is stored
        total, suffix = self._split(ctx)
        if total == 0:
            ctx.log("INFO", "no items: no subflow execution started")
            return {"numberOfBatches": 0, "iterations": {}}
        if self.wait:
            ctx.store.start_block(self._block(ctx.execution.id, ctx.task_run.id, prefix),
                                  total, 0)
        ctx.log("INFO", f"{total} batch(es): starting one execution of "
                        f"{target[1].namespace}.{target[1].id} each")

        def start() -> None:
            runtime = current()
            store = ctx.store
            taskrun = ctx.variables.get("taskrun")
            for index in range(total):
                if self.wait and store.task_run(ctx.execution.id,
                                                ctx.task_run.id).state.current.terminated:
                    return  # the parent was killed: start no more children
                child_id = f"{prefix}{index}"
                existing: Execution | None = None
                if redelivered:
                    try:
                        existing = store.execution_head(child_id)
                    except ExecutionNotFound:
                        existing = None
                if existing is not None:
                    state = store.execution_state(child_id)
                    if state.terminated:
                        notify_parent(store.get_execution(child_id))
                    elif state == State.CREATED:
                        resume_start(runtime.app, target[1], existing, store=store)
                    continue
                ctx.variables["taskrun"] = {**(taskrun or {}), "iteration": index,
                                            "items": to_uri(self._batch_path(ctx, index, suffix))}
                try:
                    child = self._create(ctx, child_id, target, iteration=index,
                                         warn=index == 0)
                finally:
                    ctx.variables["taskrun"] = taskrun
                start_execution(runtime.app, target[1], child, store=store)
                if store.execution_state(child.id).terminated:  # refused (concurrency)
                    notify_parent(store.get_execution(child.id))

        outputs = {"numberOfBatches": total}
        if not self.wait:
            start()
            return outputs
        return Waiting("subflow", outputs=outputs, then=start)

    @staticmethod
    def _block(execution_id: str, run_id: str, prefix: str) -> BlockRef:
        return BlockRef(execution_id, run_id, _BLOCK, prefix)

    @staticmethod
    def _batch_path(ctx: TaskContext, index: int, suffix: str) -> str:
        return task_file_path(ctx.execution.namespace, ctx.execution.flow_id, ctx.execution.id,
                              ctx.task_run.task_id, ctx.task_run.id, f"batches/{index}{suffix}")

    def _split(self, ctx: TaskContext) -> tuple[int, str]:
        """Store the batches of `items`: (how many, their file suffix)."""
        uri = ctx.render(self.items, "items")
        if not is_uri(uri):
            raise TaskFailed(f"items: unable to split the items from {str(uri)[:200]!r}: "
                             "this is not an internal storage (kestra://) URI",
                             retryable=False)
        storage = storage_for(ctx.settings.storage_root)
        try:
            check_readable(ctx, uri)
            stream = storage.open(uri)
        except StorageError as exc:
            raise TaskFailed(f"items: {exc}", retryable=False) from None
        suffix = PurePosixPath(uri).suffix[:16]
        with stream:
            if self.batch.partitions is not None:
                count = self._partition(ctx, _lines(stream), self.batch.partitions, suffix)
            else:
                count = self._sequential(ctx, _lines(stream), suffix)
        return count, suffix

    def _sequential(self, ctx: TaskContext, lines: Iterator[bytes], suffix: str) -> int:
        """Batches of `rows` lines, or of lines until `bytes` is reached
        (Kestra's split: a new batch starts once the current one is full)."""
        storage = storage_for(ctx.settings.storage_root)
        limit = bytes_of(self.batch.bytes) if self.batch.bytes is not None else None
        count = 0
        line = next(lines, None)
        while line is not None:
            if count >= MAX_BATCHES:
                raise TaskFailed(f"items: more than {MAX_BATCHES} batches; make them larger "
                                 "(batch.rows or batch.bytes)", retryable=False)
            rows = size = 0
            with tempfile.SpooledTemporaryFile(max_size=1 << 20) as batch:
                while line is not None and (rows < self.batch.rows if limit is None
                                            else rows == 0 or size < limit):
                    batch.write(line)
                    rows, size = rows + 1, size + len(line)
                    line = next(lines, None)
                batch.seek(0)
                storage.put(self._batch_path(ctx, count, suffix), batch)  # type: ignore[arg-type]
            count += 1
        return count

    def _partition(self, ctx: TaskContext, lines: Iterator[bytes], partitions: int,
                   suffix: str) -> int:
        """Line i goes to partition i % partitions; empty partitions are dropped
        (as Kestra does), the others numbered in order."""
        storage = storage_for(ctx.settings.storage_root)
        buffers: dict[int, bytearray] = {}
        buffered = 0
        with tempfile.TemporaryDirectory(prefix="foreachitem-") as scratch:
            folder = Path(scratch)

            def flush() -> None:
                for index, data in buffers.items():
                    with (folder / str(index)).open("ab") as out:
                        out.write(data)
                buffers.clear()

            for number, line in enumerate(lines):
                buffers.setdefault(number % partitions, bytearray()).extend(line)
                buffered += len(line)
                if buffered >= _PARTITION_BUFFER:
                    flush()
                    buffered = 0
            flush()
            count = 0
            for index in range(partitions):
                part = folder / str(index)
                if part.is_file():
                    storage.put_file(self._batch_path(ctx, count, suffix), part)
                    count += 1
        return count

    def child_executions(self, outputs: dict[str, Any]) -> list[str]:
        """The child executions a waiting run started (to kill them with it)."""
        prefix = (outputs.get("_checkpoint") or {}).get("childPrefix")
        total = outputs.get("numberOfBatches")
        if not prefix or not isinstance(total, int):
            return []
        return [f"{prefix}{index}" for index in range(total)]


def _lines(stream: Any) -> Iterator[bytes]:
    """The file's lines, each ending with one newline (Kestra writes each row
    followed by its separator, "\n": a last line without one gets one)."""
    for line in stream:
        if line.endswith(b"\r\n"):
            line = line[:-2]
        elif line.endswith((b"\n", b"\r")):
            line = line[:-1]
        yield line + b"\n"


def child_ended(store: ExecutionStore, task: ForEachItem, run_outputs: dict[str, Any],
                execution_id: str, run_id: str, child_id: str,
                ) -> tuple[State, dict[str, Any], str | None] | None:
    """Count the ended child; once the last has ended, the run's (state,
    outputs, error). None while children are still running (or a duplicate)."""
    prefix = (run_outputs.get("_checkpoint") or {}).get("childPrefix")
    if prefix != child_id[:_PREFIX]:
        return None  # a child of an earlier attempt (before a restart): not this run's
    try:
        child = store.execution_head(child_id)
        ended = child.state.current
    except ExecutionNotFound:
        ended = State.FAILED
    block = ForEachItem._block(execution_id, run_id, child_id[:_PREFIX])
    progress = store.end_block_item(block, child_id, ended, may_continue=False)
    if progress is None or not progress.done:
        return None
    return _result(store, task, run_outputs, execution_id, run_id, child_id[:_PREFIX], progress)


def _result(store: ExecutionStore, task: ForEachItem, run_outputs: dict[str, Any],
            execution_id: str, run_id: str, prefix: str, progress: BlockProgress,
            ) -> tuple[State, dict[str, Any], str | None]:
    total = progress.total
    counts = {k: v for k, v in progress.counts.items() if v}  # Redis keeps zeros
    outputs: dict[str, Any] = {"numberOfBatches": total, "iterations": counts}
    merged = _merge_outputs(store, execution_id, run_id, prefix, total)
    if merged is not None:
        outputs["subflowOutputs"] = merged
    state = State.SUCCESS
    if task.transmit_failed:
        for worst in (State.KILLED, State.FAILED, State.PAUSED, State.WARNING):
            if progress.counts.get(worst.value):
                state = worst
                break
        if state == State.FAILED and task.allow_failure:
            state = State.WARNING
        if state == State.WARNING and task.allow_warning:
            state = State.SUCCESS
    error = None
    if state in (State.FAILED, State.KILLED):
        bad = {k: v for k, v in progress.counts.items() if k in ("FAILED", "KILLED")}
        error = f"{sum(bad.values())} of {total} subflow executions ended " + \
            ", ".join(f"{k} ({v})" for k, v in sorted(bad.items()))
    return state, outputs, error


def _merge_outputs(store: ExecutionStore, execution_id: str, run_id: str, prefix: str,
                   total: int) -> str | None:
    """The children's outputs, one JSON line per batch in order (Kestra merges
    them into one file too); None when no child has outputs."""
    runtime = current()
    parent = store.execution_head(execution_id)
    run = store.task_run(execution_id, run_id)
    any_outputs = False
    with tempfile.SpooledTemporaryFile(max_size=1 << 20) as merged:
        for index in range(total):
            try:
                child = store.get_execution(f"{prefix}{index}")  # a head lacks outputs
            except ExecutionNotFound:
                continue
            if child.outputs:
                any_outputs = True
            merged.write(json.dumps(child.outputs or {}, default=str).encode() + b"\n")
        if not any_outputs:
            return None
        merged.seek(0)
        path = task_file_path(parent.namespace, parent.flow_id, execution_id, run.task_id,
                              run_id, "subflowOutputs.jsonl")
        return storage_for(runtime.settings.storage_root).put(path, merged)  # type: ignore[arg-type]
