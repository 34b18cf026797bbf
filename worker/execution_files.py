"""Files a task may read: kestra:// URIs of its own execution (or of another
execution of its namespace) in the internal storage, and paths in a working
directory of its own execution, so a value that comes from an input can never
make a task read other files of the worker."""

from __future__ import annotations

import re
from pathlib import Path

from harrier.common.errors import StorageError, TaskFailed
from harrier.common.execution import Execution
from harrier.common.storage import (
    READ_LIMIT,
    Storage,
    belongs_to_execution,
    belongs_to_namespace,
    is_uri,
    storage_for,
    task_file_path,
)
from harrier.worker.context import TaskContext
from harrier.worker.subflows import SUBFLOW_TYPE

# A kestra:// URI inside a rendered command (ends at a quote, space or shell syntax).
_URI_IN_TEXT = re.compile(r"kestra:///[A-Za-z0-9._~%+=@,/-]+")


def storage(ctx: TaskContext) -> Storage:
    return storage_for(ctx.settings.storage_root)


def store_task_files(ctx: TaskContext, files: dict[str, Path]) -> dict[str, str]:
    """Copy the task's files into storage: name -> kestra:// URI (Kestra's outputFiles)."""
    run = ctx.task_run
    return {name: storage(ctx).put_file(task_file_path(
        ctx.execution.namespace, ctx.execution.flow_id, ctx.execution.id, run.task_id,
        run.id, name), path) for name, path in files.items()}


def check_readable(ctx: TaskContext, uri: str) -> None:
    """Only files of this execution, of an execution of the same namespace, or
    of the execution whose end triggered this one (Kestra's `trigger` variables
    of a Flow trigger: namespace, flowId, executionId), or of a subflow's parent."""
    check_readable_by(ctx.execution, uri)


def check_readable_by(execution: Execution, uri: str) -> None:
    """check_readable for what an execution (not one of its tasks) reads."""
    trigger = execution.trigger or {}
    upstream = [str(trigger.get(key) or "") for key in ("namespace", "flowId", "executionId")]
    # A subflow's parent (its files: a ForEachItem's batch, a FILE input it passed on).
    parent_vars = (trigger.get("variables") or {}) if trigger.get("type") == SUBFLOW_TYPE else {}
    parent = [str(parent_vars.get(key) or "") for key in ("namespace", "flowId", "executionId")]
    if not (belongs_to_execution(uri, execution.namespace, execution.flow_id, execution.id)
            or belongs_to_namespace(uri, execution.namespace)
            or (all(upstream) and belongs_to_execution(uri, *upstream))
            or (all(parent) and belongs_to_execution(uri, *parent))):
        raise StorageError(f"{uri}: not a file of this execution nor of namespace "
                           f"{execution.namespace}")


def copy_stored_file(ctx: TaskContext, uri: str, target: Path, field: str) -> None:
    """Copy the file a kestra:// URI names to `target`, checked."""
    try:
        check_readable(ctx, uri)
        storage(ctx).copy_to(uri, target)
    except StorageError as exc:
        raise TaskFailed(f"{field}: {exc}{_hint(ctx)}", retryable=False) from None


def _hint(ctx: TaskContext) -> str:
    if ctx.settings.embedded or ctx.settings.storage_dir is not None:
        return ""
    return (f" (HARRIER_STORAGE_DIR is not set: this worker's storage is "
            f"{ctx.settings.storage_root}; in distributed mode set it to a volume every "
            "worker and the API share)")


def read_text(ctx: TaskContext, uri: object) -> str:
    """read(uri) in a template: the file's text, at most READ_LIMIT bytes."""
    if not is_uri(uri):
        raise ValueError(f"read({uri!r}): expected a kestra:// URI (e.g. an outputFiles value)")
    text_uri = str(uri)
    try:
        check_readable(ctx, text_uri)
        size = storage(ctx).size(text_uri)
    except StorageError as exc:
        raise ValueError(f"read({text_uri}): {exc}") from None
    if size > READ_LIMIT:
        raise ValueError(f"read({text_uri}): the file has {size} bytes, more than read() "
                         f"returns ({READ_LIMIT}); pass it with inputFiles instead")
    with storage(ctx).open(text_uri) as stream:
        return stream.read().decode("utf-8", errors="replace")


def localize_uris(ctx: TaskContext, text: str, field: str) -> str:
    """Kestra's auto-resolution: a kestra:// URI in a command becomes the path of
    a copy of the file in the working directory."""
    copies: dict[str, str] = {}

    def local(match: re.Match[str]) -> str:
        uri = match.group(0)
        if uri not in copies:
            name = re.sub(r"[^A-Za-z0-9._-]", "_", uri.rsplit("/", 1)[-1]) or "file"
            target = ctx.workdir / ".storage" / str(len(copies)) / name
            copy_stored_file(ctx, uri, target, field)
            copies[uri] = str(target)
        return copies[uri]

    return _URI_IN_TEXT.sub(local, text) if "kestra:///" in text else text


def execution_file(ctx: TaskContext, value: str) -> Path | None:
    """The file `value` (a kestra:// URI, a path or file:// URI) names, if this
    execution may read it."""
    if is_uri(value):
        try:
            check_readable(ctx, value)
            return storage(ctx).local_path(value, ctx.workdir)
        except StorageError:
            return None
    candidate = Path(value.removeprefix("file://"))
    if not candidate.is_absolute():
        return None
    root = ctx.settings.work_root.resolve()
    resolved = candidate.resolve()
    if resolved.is_relative_to(root) and resolved.is_file() and resolved != root and \
            resolved.relative_to(root).parts[0].startswith(f"{ctx.execution.id}-"):
        return resolved
    return None


def require_execution_file(ctx: TaskContext, value: str, field: str) -> Path:
    found = execution_file(ctx, value)
    if found is None:
        raise TaskFailed(f"{field}: {value!r} is not a file of this execution (a "
                         "Download's `uri` or an outputFiles value)", retryable=False)
    return found
