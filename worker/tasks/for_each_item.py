"""io.kestra.plugin.core.flow.ForEachItem: split a file of the internal storage
(`items`, a kestra:// URI) into batches of `batch.rows` lines, store each batch,
and start one execution of flow `namespace`.`flowId` per batch, its inputs
rendered with `taskrun.items` (the batch's URI) and `taskrun.iteration` (its
index). With `wait` the run waits without a worker slot (worker.context.Waiting)
and ends once every child has: `iterations` counts the children by state, and
`subflowOutputs` names a file of the children's outputs, one JSON line each.

Followed: Kestra's ForEachItem.java (its split / executable / merge subtasks
folded into one task run here): only kestra:// URIs are split, `rows` defaults
to 1, one subflow per batch started at once (Kestra has no concurrency limit
on it), inputs rendered per batch with taskrun.items and taskrun.iteration,
children carry the batch index as trigger.taskRunIteration, outputs
numberOfBatches, iterations (per state) and the merged outputs of the children.

Flat cost: batches are streamed from the file to storage one at a time; the
children are counted as they end by the store (one atomic step each, a block
item per child), never by reading them all; child ids are the attempt's prefix
plus the batch index, so a redelivered attempt finds what it started."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from pathlib import PurePosixPath
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

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
_UNSUPPORTED = {"bytes": "", "partitions": "", "separator": " (batches are lines)",
                "regexPattern": " (batches are lines)"}


class ForEachItemBatch(BaseModel):
    """How `items` is split: `rows` lines per batch."""

    model_config = ConfigDict(defer_build=True, extra="forbid", frozen=True)
    rows: int = Field(1, ge=1)

    @model_validator(mode="before")
    @classmethod
    def _not_yet(cls, value: object) -> object:
        if isinstance(value, dict):
            for name, why in _UNSUPPORTED.items():
                if name in value:
                    raise ValueError(f"batch.{name} is not supported yet{why}: "
                                     "split by batch.rows")
        return value


@register_task(FOR_EACH_ITEM_TYPE, "io.kestra.core.tasks.flows.ForEachItem")
class ForEachItem(Subflow):
    items: str
    batch: ForEachItemBatch = ForEachItemBatch(rows=1)

    def run(self, ctx: TaskContext) -> dict[str, Any] | Waiting:
        prefix = ctx.previous_checkpoint.get("childPrefix")
        redelivered = bool(prefix)
        if not prefix:
            prefix = new_id()
            ctx.checkpoint({"childPrefix": prefix})
        total, suffix = self._split(ctx)
        if total == 0:
            ctx.log("INFO", "no items: no subflow execution started")
            return {"numberOfBatches": 0, "iterations": {}}
        if self.wait:
            ctx.store.start_block(self._block(ctx.execution.id, ctx.task_run.id, prefix),
                                  total, 0)
        target = self._target(ctx)
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
                    child = self._create(ctx, child_id, target, iteration=index)
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
        count = 0
        with stream:
            for lines in _batches(stream, self.batch.rows):
                if count >= MAX_BATCHES:
                    raise TaskFailed(f"items: more than {MAX_BATCHES} batches of "
                                     f"{self.batch.rows} row(s); raise batch.rows",
                                     retryable=False)
                with tempfile.SpooledTemporaryFile(max_size=1 << 20) as batch:
                    batch.writelines(lines)
                    batch.seek(0)
                    storage.put(self._batch_path(ctx, count, suffix), batch)  # type: ignore[arg-type]
                count += 1
        return count, suffix

    def child_executions(self, outputs: dict[str, Any]) -> list[str]:
        """The child executions a waiting run started (to kill them with it)."""
        prefix = (outputs.get("_checkpoint") or {}).get("childPrefix")
        total = outputs.get("numberOfBatches")
        if not prefix or not isinstance(total, int):
            return []
        return [f"{prefix}{index}" for index in range(total)]


def _batches(stream: Any, rows: int) -> Iterator[list[bytes]]:
    lines: list[bytes] = []
    for line in stream:
        lines.append(line)
        if len(lines) == rows:
            yield lines
            lines = []
    if lines:
        yield lines


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
