"""What a task type sees while it runs: rendering, logging, its working
directory, the runner to use, and the cancel signal of a kill."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harrier.common.execution import WAITING, Execution, TaskRun
from harrier.common.flow import Flow
from harrier.common.settings import Settings
from harrier.common.state import State
from harrier.common.store import ExecutionStore
from harrier.worker.runners.base import TaskRunner

__all__ = ["WAITING", "TaskContext", "Waiting"]


@dataclass
class Waiting:
    """What a task's run() returns when it is not done and nothing should run
    meanwhile (a Pause, a Subflow waiting for its child): the run stays in
    `state` (RUNNING or PAUSED) with `outputs`, holds no worker slot, and ends
    when Engine.complete_task is called (an `advance` message: complete_task).
    `then` runs once the run is stored waiting (e.g. start the child execution
    whose end completes it, so the end cannot come first)."""

    reason: str
    state: State = State.RUNNING
    outputs: dict[str, Any] = field(default_factory=dict)
    then: Callable[[], None] | None = None


@dataclass
class TaskContext:
    execution: Execution
    task_run: TaskRun
    flow: Flow
    settings: Settings
    store: ExecutionStore
    # The attempt's directory, created on first use: most tasks (Log, Return,
    # flowables) never touch it, and a mkdir plus its removal cost more than
    # the task itself (see bench/scale.py).
    workdir_path: Path
    attempt: int  # 1-based number of this attempt
    variables: dict[str, Any]  # the template context
    render_value: Callable[..., Any]  # render_value(value, field=..., shell=..., python=...)
    log: Callable[[str, str], None]  # log(level, message)
    runner: Callable[[Any], TaskRunner]  # runner(task) -> the task runner to use
    cancel: threading.Event = field(default_factory=threading.Event)
    # Per-attempt scratch the task may persist (e.g. a Spark submission id), so
    # a redelivered attempt can re-attach instead of starting over.
    checkpoint: Callable[[dict[str, Any]], None] = lambda data: None
    previous_checkpoint: dict[str, Any] = field(default_factory=dict)
    # Hides the values of the secrets this attempt rendered (in a URL it
    # reports, an output it keeps); logs and errors are masked already.
    mask: Callable[[str], str] = lambda text: text
    # Set by a task that succeeded with a warning (e.g. stderr with
    # warningOnStdErr): its run ends WARNING instead of SUCCESS.
    warning: str | None = None

    workdir_created: bool = False

    @property
    def workdir(self) -> Path:
        if not self.workdir_created:
            self.workdir_path.mkdir(parents=True, exist_ok=True)
            self.workdir_created = True
        return self.workdir_path

    def render(self, value: Any, field: str, *, shell: bool = False,
               python: bool = False) -> Any:
        """Render `value`; shell=True / python=True escape each printed value for
        the shell or Python context it lands in (see common.templating.render)."""
        return self.render_value(value, field=field, shell=shell, python=python)
