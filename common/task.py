"""The properties every task shares (id, type, retry, timeout, allowFailure ...)
and the registry that maps Kestra type names to task classes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator, model_validator

from harrier.common.durations import parse_duration
from harrier.common.retry import RetryPolicy
from harrier.common.state import State

if TYPE_CHECKING:
    from harrier.common.store import BlockProgress

TASK_ID_PATTERN = r"^[a-zA-Z0-9][a-zA-Z0-9_-]*$"


class WorkerGroup(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="forbid")
    key: str


_DOCKER_OPTIONS = frozenset({
    "containerImage", "image", "pullPolicy", "host", "cpu", "memory", "env", "volumes",
    "entryPoint", "networkMode", "user", "delete"})
# The task runners a worker has (worker/runners/registry.py registers the same
# names) and the properties each honours; anything else is refused here.
TASK_RUNNER_OPTIONS: dict[str, frozenset[str]] = {
    "io.kestra.plugin.core.runner.Process": frozenset(),
    "io.kestra.core.models.tasks.runners.types.ProcessTaskRunner": frozenset(),
    "process": frozenset(),
    "io.kestra.plugin.scripts.runner.docker.Docker": _DOCKER_OPTIONS,
    "io.kestra.core.models.tasks.runners.types.DockerTaskRunner": _DOCKER_OPTIONS,
    "docker": _DOCKER_OPTIONS,
}


def unsupported_runner_options(type_name: str, options: dict[str, Any]) -> None:
    """Raise ValueError naming an unknown runner type or an option it does not honour."""
    known = TASK_RUNNER_OPTIONS.get(type_name) if type_name in TASK_RUNNER_OPTIONS else \
        TASK_RUNNER_OPTIONS.get(type_name.lower())
    if known is None:
        names = ", ".join(name for name in TASK_RUNNER_OPTIONS if "." in name)
        raise ValueError(f"unknown task runner type {type_name!r}; known types: {names}")
    for name in options:
        if name not in known:
            raise ValueError(f"`{name}` is not supported yet by the {type_name.rsplit('.', 1)[-1]}"
                             f" task runner (supported: {', '.join(sorted(known)) or 'none'})")


class TaskRunnerSpec(BaseModel):
    """`taskRunner:` — a type plus the runner-specific properties it honours."""

    model_config = ConfigDict(defer_build=True, extra="allow")
    type: str

    @model_validator(mode="after")
    def _known_options(self) -> TaskRunnerSpec:
        unsupported_runner_options(self.type, self.options())
        return self

    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class Task(BaseModel):
    """Base of every task type. Subclasses add their own properties."""

    # Jackson (Kestra) turns `message: 42` into the string "42"; so do we.
    model_config = ConfigDict(defer_build=True, extra="forbid", populate_by_name=True, frozen=True,
                              coerce_numbers_to_str=True)

    # Filled by @register_task: the Kestra type name and its aliases.
    type_names: ClassVar[tuple[str, ...]] = ()
    # Properties rendered as shell commands: template values are shell-quoted.
    shell_properties: ClassVar[frozenset[str]] = frozenset()

    id: str = Field(pattern=TASK_ID_PATTERN)
    type: str
    description: str | None = None
    retry: RetryPolicy | None = None
    timeout: timedelta | None = None
    allow_failure: bool = Field(False, alias="allowFailure")
    # Kestra's allowWarning: a task that ends WARNING counts as SUCCESS.
    allow_warning: bool = Field(False, alias="allowWarning")
    disabled: bool = False
    task_runner: TaskRunnerSpec | None = Field(None, alias="taskRunner")
    worker_group: WorkerGroup | None = Field(None, alias="workerGroup")
    # The least level of the task's logs that is kept (Kestra's logLevel).
    log_level: Literal["TRACE", "DEBUG", "INFO", "WARN", "ERROR"] | None = Field(
        None, alias="logLevel")
    # Kestra 2.0 names it `when`; both names are accepted (not both at once).
    run_if: str | bool | None = Field(None, alias="runIf",
                                      validation_alias=AliasChoices("runIf", "when", "run_if"))

    @model_validator(mode="before")
    @classmethod
    def _when(cls, data: Any) -> Any:
        if isinstance(data, dict) and "when" in data:
            if "runIf" in data:
                raise ValueError("runIf and when are the same property (Kestra 2.0 renamed "
                                 "runIf to when): give only one")
            data = {("runIf" if key == "when" else key): value for key, value in data.items()}
        return data

    @field_validator("timeout", mode="before")
    @classmethod
    def _timeout(cls, value: object) -> object:
        if isinstance(value, str):
            return parse_duration(value)
        return value

    @property
    def is_flowable(self) -> bool:
        return False

    def children(self) -> Iterator[tuple[str, Task]]:
        """(property path, child) for every task nested directly in this one."""
        return iter(())


class FlowControl(Protocol):
    """What a flowable may do while the engine runs it (worker.engine implements it)."""

    def render(self, value: Any, field: str) -> Any:
        """Render a property of the flowable with the execution's variables."""

    def run_block(self, block: str, *, window: int = 1) -> None:
        """Run the tasks of one of the flowable's blocks: `window` at a time
        (1: one after the other; 0: all at once). block_ended follows."""

    def run_each(self, block: str, values: list[str], *, window: int = 1) -> None:
        """Run a block once per value, `window` iterations at a time (0: all),
        each iteration's tasks `iteration_window()` at a time. block_ended
        follows once, after the last iteration, in the worst of their states;
        after a failed iteration no other starts."""

    def run_isolated(self, values: list[str], *, window: int = 0,
                     store_outputs: bool = False) -> None:
        """Run the flowable's `tasks` once per value, each iteration an
        execution of its own (Kestra 2.0's Loop), `window` at a time (0: all);
        the engine ends the flowable's run once they have ended.
        `store_outputs`: each iteration's outputs go to a file of the internal
        storage, its outputs being that file's `uri`."""

    def read_lines(self, uri: str, limit: int) -> list[str]:
        """The first `limit` lines of a file of the internal storage the
        execution may read (HarrierError when it may not, or there is none)."""

    def set_outputs(self, outputs: dict[str, Any]) -> None:
        """Record outputs on the flowable's task run."""

    def run_iteration(self, block: str, iteration: int, *, delay: float = 0) -> None:
        """Run a block as iteration `iteration` of a loop without values
        (LoopUntil): its runs are new ones, kept beside the earlier iterations'.
        `delay` seconds from now, holding no worker slot meanwhile.
        iteration_ended follows."""

    def elapsed(self) -> timedelta:
        """How long ago the flowable's run started."""

    def log(self, level: str, message: str) -> None:
        """A log line of the flowable's task run."""

    def start_counter(self, name: str, total: int) -> None:
        """A counter of `total` items in the store, kept with the flowable's run
        (a Dag counts each task's dependencies): see count()."""

    def reset_counter(self, name: str, markers: list[str]) -> None:
        """Forget a counter and these markers counted in it (a restart)."""

    def count(self, name: str, marker: str, state: State) -> BlockProgress | None:
        """Count one item of a counter in `state`, once per `marker` (None: it
        was counted before). Several workers may count at once: exactly one
        sees the counter reach its total."""

    def end(self, state: State, error: str | None = None) -> None:
        """End the flowable's task run (after its errors and finally tasks,
        which the engine runs); its owner goes on."""

    def fail(self, message: str) -> None:
        """Log `message` as an error and end the flowable's run FAILED."""


# Blocks every flowable may have, run by the engine after the flowable's own:
# `errors` after a failure, then `finally` whatever happened.
PHASE_BLOCKS = ("errors", "finally")


class FlowableTask(Task):
    """A task that only arranges other tasks (Parallel, Sequential, If, Switch).

    It runs in the engine, not in a task runner: start() says which block of
    child tasks to run, block_ended() what comes after a block."""

    # YAML names of the properties holding lists of child tasks (or maps of lists).
    child_properties: ClassVar[tuple[str, ...]] = ("tasks",)
    # A loop runs its block once per value (run_each): its direct children's
    # runs carry the value, and their outputs are kept per value.
    is_loop: ClassVar[bool] = False
    # Its iterations are executions of their own (Kestra 2.0's Loop): started
    # with FlowControl.run_isolated, they are not runs of this execution.
    runs_executions: ClassVar[bool] = False

    # Kestra's task-level `errors` (run when the flowable's tasks failed; the
    # flowable stays FAILED) and `finally` (run whatever happened).
    errors: list[Task] = Field(default_factory=list)
    finally_: list[Task] = Field(default_factory=list, alias="finally")

    @classmethod
    def all_child_properties(cls) -> tuple[str, ...]:
        return (*cls.child_properties, *PHASE_BLOCKS)

    def path_element(self, index: int, value: str) -> str:
        """How a loop's iteration is named in its runs' value paths (and so in
        `outputs.task[...]`): by default its value."""
        return value

    def iteration_value(self, value: str) -> str:
        """The `taskrun.value` of an iteration's direct children."""
        return value

    def iteration_window(self) -> int:
        """How many of a loop iteration's tasks run at once (1: in order; 0: all)."""
        return 1

    @property
    def is_flowable(self) -> bool:
        return True

    def blocks(self) -> dict[str, list[Task]]:
        """Every block of child tasks by name ("tasks", "then", "cases.<key>")."""
        found: dict[str, list[Task]] = {}
        for name in self.all_child_properties():
            value = getattr(self, _attribute(type(self), name))
            if isinstance(value, list):
                if value or name not in PHASE_BLOCKS:
                    found[name] = value
            elif isinstance(value, dict):
                for key, branch in value.items():
                    found[f"{name}.{key}"] = branch
        return found

    def children(self) -> Iterator[tuple[str, Task]]:
        for name, tasks in self.blocks().items():
            for index, child in enumerate(tasks):
                yield f"{name}[{index}]", child

    def start(self, ctl: FlowControl) -> None:
        """Begin: by default, run the `tasks` block one task after the other."""
        ctl.run_block("tasks")

    def block_ended(self, ctl: FlowControl, block: str, state: State) -> None:
        """A block this flowable ran has ended in `state`: by default the
        flowable ends in the same state."""
        ctl.end(state)

    def iteration_ended(self, ctl: FlowControl, block: str, iteration: int,
                        state: State) -> None:
        """An iteration started with run_iteration has ended in `state`."""
        ctl.end(state)

    def reopened(self, ctl: FlowControl, children: dict[str, State]) -> None:
        """A restart reopened the flowable's run: its failed children run again
        (their ends come back through block_ended); `children` are the states
        of those that stay ended. Blocks are recounted by the engine."""
        return None


def _attribute(cls: type[Task], yaml_name: str) -> str:
    for attribute, info in cls.model_fields.items():
        if yaml_name in (attribute, info.alias):
            return attribute
    raise AttributeError(yaml_name)


_REGISTRY: dict[str, type[Task]] = {}
# Task types live with their bodies in the worker layer (harrier.worker.tasks)
# or in other distributions; each names its module under this entry point group,
# so the flow model finds them without importing upward.
PLUGIN_GROUP = "harrier.tasks"
_loaded = False


def register_task(*names: str) -> Any:
    """Class decorator: register a task type under its Kestra name and aliases."""

    def decorate(cls: type[Task]) -> type[Task]:
        for name in names:
            if name in _REGISTRY and _REGISTRY[name] is not cls:
                raise RuntimeError(f"task type {name} registered twice")
            _REGISTRY[name] = cls
        cls.type_names = names
        return cls

    return decorate


def _load_plugins() -> None:
    global _loaded
    if not _loaded:
        plugins = entry_points(group=PLUGIN_GROUP)
        if not plugins:
            raise RuntimeError(f"no task types found (entry point group {PLUGIN_GROUP!r}): "
                               "install Harrier with pip (`pip install -e .` in a checkout)")
        for plugin in plugins:
            plugin.load()
        _loaded = True


def task_class(type_name: str) -> type[Task] | None:
    _load_plugins()
    return _REGISTRY.get(type_name)


def known_task_types() -> list[str]:
    _load_plugins()
    return sorted(_REGISTRY)
