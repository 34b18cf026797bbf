"""What every task runner takes and returns: a script to run in a working
directory, with its lines streamed back as they arrive."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

# (stream, line) where stream is "stdout" or "stderr"; called from a reader
# thread for every line the task prints, as it prints it.
LineSink = Callable[[str, str], None]


@dataclass
class RunRequest:
    """One attempt of a script task, ready to run."""

    commands: list[str]  # shell script lines, joined with newlines
    workdir: Path  # fresh directory for this attempt; the runner mounts or cds into it
    env: dict[str, str] = field(default_factory=dict)
    timeout: float | None = None  # seconds; the runner kills everything on expiry
    interpreter: list[str] = field(default_factory=lambda: ["/bin/sh", "-c"])
    on_line: LineSink = lambda stream, line: None
    # Set when the execution is being killed: the runner stops the work promptly.
    cancel: threading.Event = field(default_factory=threading.Event)
    # Runner-specific properties from the task's `taskRunner` (image, cpu ...).
    options: dict[str, Any] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)  # execution/task-run ids


@dataclass
class RunResult:
    exit_code: int
    outputs: dict[str, Any] = field(default_factory=dict)  # from ::{"outputs":...}::
    stderr_tail: list[str] = field(default_factory=list)  # last lines, for errors
    stdout_tail: list[str] = field(default_factory=list)
    timed_out: bool = False
    cancelled: bool = False


class TaskRunner(Protocol):
    """Runs a RunRequest to completion; raises only for infrastructure faults
    (engine unreachable, image missing), never for a non-zero exit."""

    def run(self, request: RunRequest) -> RunResult: ...
