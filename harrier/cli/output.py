"""How the CLI prints for people: aligned tables, coloured states, log lines
prefixed by task id; and JSON for machines."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

import click

from harrier.common.execution import Execution, LogEntry
from harrier.common.state import State

_COLOURS = {
    State.SUCCESS: "green", State.WARNING: "yellow", State.FAILED: "red",
    State.KILLED: "red", State.RUNNING: "cyan", State.RETRYING: "magenta",
    State.KILLING: "red", State.CREATED: "white",
}


def state_text(state: State) -> str:
    return click.style(state.value, fg=_COLOURS.get(state, "white"), bold=True)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(h) for h in headers]] + [[_plain(c) for c in row] for row in rows]
    widths = [max(len(click.unstyle(row[i])) for row in cells) for i in range(len(headers))]
    lines = []
    for index, row in enumerate(cells):
        padded = [cell + " " * (widths[i] - len(click.unstyle(cell)))
                  for i, cell in enumerate(row)]
        lines.append("  ".join(padded).rstrip())
        if index == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _plain(value: Any) -> str:
    return "" if value is None else str(value)


def log_line(entry: LogEntry, width: int = 0) -> str:
    task = entry.task_id or "execution"
    prefix = click.style(f"[{task}]".ljust(width + 2), fg="blue")
    message = entry.message
    if entry.level in ("ERROR", "WARN"):
        message = click.style(message, fg="red" if entry.level == "ERROR" else "yellow")
    return f"{prefix} {message}"


def duration_text(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.2f} s"
    return f"{seconds / 60:.1f} min"


def summary(execution: Execution) -> str:
    rows = []
    parents = {run.id: run.parent_task_run_id for run in execution.task_runs}
    for run in _tree_order(execution):
        depth, parent = 0, run.parent_task_run_id
        while parent is not None and depth < 20:
            depth, parent = depth + 1, parents.get(parent)
        rows.append(["  " * depth + run.task_id + (f" [{run.value}]" if run.value else ""),
                     state_text(run.state.current), len(run.attempts),
                     duration_text(run.state.duration_seconds())])
    head = (f"Execution {execution.id} of {execution.namespace}.{execution.flow_id}: "
            f"{state_text(execution.state.current)} in "
            f"{duration_text(execution.state.duration_seconds())}")
    body = table(["task", "state", "attempts", "duration"], rows) if rows else "(no task ran)"
    text = f"{head}\n{body}"
    if execution.error:
        text += "\n" + click.style(f"error: {execution.error}", fg="red")
    return text


def _tree_order(execution: Execution) -> list[Any]:
    """Task runs in start order, each flowable followed by its children."""
    children: dict[str | None, list[Any]] = {}
    for run in execution.task_runs:
        children.setdefault(run.parent_task_run_id, []).append(run)
    ordered: list[Any] = []

    def walk(parent: str | None) -> None:
        for run in children.get(parent, []):
            ordered.append(run)
            walk(run.id)

    walk(None)
    seen = {run.id for run in ordered}
    return ordered + [run for run in execution.task_runs if run.id not in seen]


def print_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")
