"""io.kestra.plugin.core.flow.Dag: tasks that start as soon as the tasks they
depend on (`dependsOn`) have ended well; independent branches run at once.

Each task is its own one-task block (`tasks.<id>`). The store counts, per
task, how many of its dependencies have ended (and per Dag how many tasks are
settled), so two branches ending at once in two workers start a common
successor exactly once. A failed task skips what depends on it, directly or
not, and nothing else; the Dag then ends FAILED (then runs its errors tasks)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from harrier.common.state import State
from harrier.common.task import PHASE_BLOCKS, FlowableTask, FlowControl, Task, register_task

_GOOD = (State.SUCCESS, State.WARNING)
_SETTLED = "#settled"


class DagTask(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="forbid", populate_by_name=True,
                              frozen=True)
    task: Task
    depends_on: list[str] = Field(default_factory=list, alias="dependsOn")


@register_task("io.kestra.plugin.core.flow.Dag", "io.kestra.core.tasks.flows.Dag")
class Dag(FlowableTask):
    child_properties: ClassVar[tuple[str, ...]] = ("tasks",)
    child_wrappers: ClassVar[dict[str, str]] = {"tasks": "task"}

    tasks: list[DagTask] = Field(min_length=1)
    # Kestra's `concurrent`; only 0 (no limit) is supported: see _check.
    concurrent: int = Field(0, ge=0)

    @model_validator(mode="after")
    def _check(self) -> Dag:
        if self.concurrent:
            raise ValueError("concurrent: only 0 (no limit) is supported on a Dag; its ready "
                             "tasks all start at once (wrap heavy ones in a Parallel with "
                             "`concurrent`, or use a flow-level concurrency limit)")
        ids = [entry.task.id for entry in self.tasks]
        for entry in self.tasks:
            for dependency in entry.depends_on:
                if dependency not in ids:
                    raise ValueError(f"task {entry.task.id!r} depends on {dependency!r}, which "
                                     f"is not a task of this Dag (its tasks: {', '.join(ids)})")
                if dependency == entry.task.id:
                    raise ValueError(f"task {entry.task.id!r} depends on itself")
        cycle = _find_cycle({entry.task.id: entry.depends_on for entry in self.tasks})
        if cycle:
            raise ValueError(f"dependency cycle: {' -> '.join(cycle)} (task {cycle[0]!r} and "
                             f"task {cycle[-2]!r} depend on each other through dependsOn)")
        return self

    def blocks(self) -> dict[str, list[Task]]:
        found: dict[str, list[Task]] = {f"tasks.{entry.task.id}": [entry.task]
                                        for entry in self.tasks}
        for name in PHASE_BLOCKS:
            tasks = self.errors if name == "errors" else self.finally_
            if tasks:
                found[name] = tasks
        return found

    def children(self) -> Iterator[tuple[str, Task]]:
        # As written (tasks[i].task), so the UI shows the Dag's tasks as one group.
        for index, entry in enumerate(self.tasks):
            yield f"tasks[{index}]", entry.task
        for name in PHASE_BLOCKS:
            for index, child in enumerate(self.errors if name == "errors" else self.finally_):
                yield f"{name}[{index}]", child

    def _dependents(self) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {entry.task.id: [] for entry in self.tasks}
        for entry in self.tasks:
            for dependency in entry.depends_on:
                found[dependency].append(entry.task.id)
        return found

    def start(self, ctl: FlowControl) -> None:
        ctl.start_counter(_SETTLED, len(self.tasks))
        for entry in self.tasks:
            if entry.depends_on:
                ctl.start_counter(_waiting(entry.task.id), len(entry.depends_on))
        for entry in self.tasks:
            if not entry.depends_on:
                self._run_task(ctl, entry)

    def reopened(self, ctl: FlowControl, children: dict[str, State]) -> None:
        """A restart: count again, from scratch, what has settled. The tasks that
        stay ended settle now (in dependency order), which starts what depended
        on them and never ran; the failed ones run again and settle when they end."""
        ctl.reset_counter(_SETTLED, [entry.task.id for entry in self.tasks])
        for entry in self.tasks:
            if entry.depends_on:
                ctl.reset_counter(_waiting(entry.task.id), list(entry.depends_on))
        ctl.start_counter(_SETTLED, len(self.tasks))
        for entry in self.tasks:
            if entry.depends_on:
                ctl.start_counter(_waiting(entry.task.id), len(entry.depends_on))
        for task_id in _dependency_order(self.tasks):
            state = children.get(task_id)
            if state in _GOOD:
                self._settled(ctl, task_id, state)

    def _run_task(self, ctl: FlowControl, entry: DagTask) -> None:
        # A disabled task is left out of the flow, as in Kestra: its block is
        # empty and ends at once, so what depends on it goes on.
        ctl.run_block(f"tasks.{entry.task.id}")

    def block_ended(self, ctl: FlowControl, block: str, state: State) -> None:
        self._settled(ctl, block.removeprefix("tasks."), state)

    def _settled(self, ctl: FlowControl, task_id: str, state: State) -> None:
        """`task_id` ended (or was skipped): count it, tell its dependents."""
        entries = {entry.task.id: entry for entry in self.tasks}
        dependents = self._dependents()
        pending = [(task_id, state)]
        while pending:
            settled_id, settled_state = pending.pop()
            progress = ctl.count(_SETTLED, settled_id, settled_state)
            if progress is None:
                continue  # counted before (a replay): its dependents were told then
            for dependent in dependents[settled_id]:
                waiting = ctl.count(_waiting(dependent), settled_id,
                                    State.SUCCESS if settled_state in _GOOD else State.FAILED)
                if waiting is None or waiting.ended < waiting.total:
                    continue
                if waiting.state in _GOOD:
                    self._run_task(ctl, entries[dependent])
                else:
                    pending.append((dependent, State.SKIPPED))
            if progress.ended >= progress.total:
                ctl.end(progress.state)


def _dependency_order(entries: list[DagTask]) -> list[str]:
    done: list[str] = []
    pending = {entry.task.id: set(entry.depends_on) for entry in entries}
    while pending:
        ready = [task_id for task_id, needs in pending.items() if needs <= set(done)]
        done.extend(ready)
        for task_id in ready:
            del pending[task_id]
    return done


def _waiting(task_id: str) -> str:
    return f"#needs.{task_id}"


def _find_cycle(graph: dict[str, list[str]]) -> list[str]:
    """A cycle of the dependency graph as a path ending where it starts, or []."""
    colour: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str]:
        colour[node] = 1
        path.append(node)
        for nxt in graph.get(node, []):
            if colour.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt]
            if nxt not in colour:
                found = visit(nxt)
                if found:
                    return found
        path.pop()
        colour[node] = 2
        return []

    for node in graph:
        if node not in colour:
            found = visit(node)
            if found:
                return found
    return []
