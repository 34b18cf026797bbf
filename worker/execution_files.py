"""Files a task may read by path: only those in a working directory of its
own execution (a Download's `uri`, an outputFiles path), so a value that
comes from an input can never make a task read other files of the worker."""

from __future__ import annotations

from pathlib import Path

from harrier.common.errors import TaskFailed
from harrier.worker.context import TaskContext


def execution_file(ctx: TaskContext, value: str) -> Path | None:
    """The file `value` (a path or file:// URI) names, if it belongs to this execution."""
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
                         "Download's `uri` or an outputFiles path)", retryable=False)
    return found
