"""io.kestra.plugin.core.flow.WorkingDirectory: child tasks that share one
directory, run one after the other on one worker.

It is a runnable task, not a flowable: the worker that takes it runs its
children in its own attempt, in the attempt's directory, each child with
its own task run (nested under the WorkingDirectory's in the API and the UI,
its outputs read as `outputs.child` by later tasks). A failed child stops the
group, which fails; a `retry` on the WorkingDirectory runs the whole group
again, as Kestra does. `inputFiles` are written first, `outputFiles` are
collected last, from the shared directory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import PurePosixPath
from typing import Any, ClassVar

from pydantic import Field, field_validator, model_validator

from harrier.common.errors import HarrierError, TaskFailed, TaskKilled, TemplateError
from harrier.common.execution import Attempt, LogEntry, TaskRun, new_id
from harrier.common.state import State, StateRecord, transition
from harrier.common.task import Task, register_task
from harrier.common.templating import mask_secrets, render
from harrier.common.truth import is_true
from harrier.worker.context import TaskContext, Waiting
from harrier.worker.execution_files import read_text
from harrier.worker.runners.registry import runner_for
from harrier.worker.tasks.script import collect_files, write_input_file
from harrier.worker.template_context import StoredOutputs, build_context


@register_task("io.kestra.plugin.core.flow.WorkingDirectory",
               "io.kestra.core.tasks.flows.WorkingDirectory")
class WorkingDirectory(Task):
    # Parsed as tasks by the flow model (as a flowable's are).
    child_properties: ClassVar[tuple[str, ...]] = ("tasks",)

    tasks: list[Task] = Field(min_length=1)
    input_files: dict[str, str] = Field(default_factory=dict, alias="inputFiles")
    output_files: list[str] = Field(default_factory=list, alias="outputFiles")
    cache: Any = None
    namespace_files: Any = Field(None, alias="namespaceFiles")

    @field_validator("input_files")
    @classmethod
    def _relative_names(cls, files: dict[str, str]) -> dict[str, str]:
        for name in files:
            path = PurePosixPath(name)
            if path.is_absolute() or ".." in path.parts:
                raise ValueError(f"inputFiles name {name!r} must be a relative path "
                                 "inside the working directory")
        return files

    @model_validator(mode="after")
    def _check(self) -> WorkingDirectory:
        if self.cache is not None:
            raise ValueError("cache: not supported by Harrier; each run of a WorkingDirectory "
                             "starts from an empty directory (leave `cache` out)")
        if self.namespace_files is not None:
            raise ValueError("namespaceFiles: namespace files are not supported by Harrier; "
                             "give the files with inputFiles")
        for child in self.tasks:
            if child.is_flowable or isinstance(child, WorkingDirectory):
                raise ValueError(f"task {child.id!r}: only runnable tasks (scripts, Log, "
                                 "Return...) may run inside a WorkingDirectory, not flowables")
            if child.retry is not None:
                raise ValueError(f"task {child.id!r}: a retry inside a WorkingDirectory is not "
                                 "supported; put the retry on the WorkingDirectory (it runs "
                                 "the whole group again, as in Kestra)")
        return self

    @classmethod
    def all_child_properties(cls) -> tuple[str, ...]:
        return cls.child_properties

    def children(self) -> Iterator[tuple[str, Task]]:
        for index, child in enumerate(self.tasks):
            yield f"tasks[{index}]", child

    def run(self, ctx: TaskContext) -> dict[str, Any]:
        for name, content in self.input_files.items():
            target = ctx.workdir / name
            target.parent.mkdir(parents=True, exist_ok=True)
            write_input_file(ctx, target, content, f"inputFiles.{name}")
        for child in self.tasks:
            if not child.disabled:
                _run_child(ctx, child)
        outputs: dict[str, Any] = {}
        if self.output_files:
            outputs["outputFiles"] = collect_files(ctx, self.output_files)
        return outputs


def _run_child(ctx: TaskContext, child: Task) -> None:
    """One child: its own task run, rendered with its own variables, run in the
    shared directory; a failure fails the WorkingDirectory."""
    store = ctx.store
    parent = ctx.task_run
    worker_id = parent.attempts[-1].worker_id if parent.attempts else None
    state = StateRecord.start(State.CREATED)
    transition(state, State.RUNNING, what=f"task {child.id}")
    run, created, head = store.begin_task_run(ctx.execution.id, TaskRun(
        id=new_id(), execution_id=ctx.execution.id, namespace=parent.namespace,
        flow_id=parent.flow_id, task_id=child.id, task_path=child.id,
        parent_task_run_id=parent.id, value_path=parent.value_path, state=state,
        attempts=[Attempt(worker_id=worker_id)]))
    if not created:  # an earlier attempt of the WorkingDirectory ran it: run it again
        if run.state.current.terminated:
            transition(run.state, State.RESTARTED, what=f"task {child.id}")
        if run.state.current != State.RUNNING:
            transition(run.state, State.RUNNING, what=f"task {child.id}")
        run.attempts.append(Attempt(worker_id=worker_id))
        run.error = None
        store.save_task_run(run)
    if child.run_if is not None and not is_true(ctx.render(child.run_if, f"{child.id}.runIf")):
        _end(ctx, run, child, State.SKIPPED, None)
        return
    variables = build_context(ctx.flow, head, child, run,
                              outputs=StoredOutputs(store, ctx.execution.id, ctx.flow.index))
    secrets_used: set[str] = set(head.secret_values())

    def render_value(value: Any, field: str = "", shell: bool = False,
                     python: bool = False) -> Any:
        return render(value, variables, field=f"{child.id}.{field}", shell=shell,
                      python=python, secrets=ctx.settings.secrets, secrets_used=secrets_used,
                      functions={"read": lambda uri: read_text(child_ctx, uri)})

    def write_log(level: str, message: str) -> None:
        store.append_log(LogEntry(ctx.execution.id, run.id, child.id, level,
                                  mask_secrets(message, secrets_used),
                                  attempt=len(run.attempts)))

    child_ctx = TaskContext(
        execution=head, task_run=run, flow=ctx.flow, settings=ctx.settings, store=store,
        workdir_path=ctx.workdir, workdir_created=True, attempt=len(run.attempts),
        variables=variables,
        render_value=render_value, log=write_log,
        runner=lambda task: runner_for(task, ctx.settings), cancel=ctx.cancel)
    try:
        outputs = child.run(child_ctx)  # type: ignore[attr-defined]
    except TaskKilled:
        write_log("WARN", "killed")
        _end(ctx, run, child, State.KILLED, "killed")
        raise
    except (TaskFailed, TemplateError, HarrierError) as exc:
        message = mask_secrets(str(exc), secrets_used)
        write_log("ERROR", message)
        if child.allow_failure:
            _end(ctx, run, child, State.WARNING, message, attempt_state=State.FAILED)
            return
        _end(ctx, run, child, State.FAILED, message)
        raise TaskFailed(f"task {child.id} failed: {message}") from exc
    if isinstance(outputs, Waiting):
        _end(ctx, run, child, State.FAILED,
             "a task that waits cannot run inside a WorkingDirectory")
        raise TaskFailed(f"task {child.id} waits (Pause, Subflow...): not allowed inside a "
                         "WorkingDirectory")
    run.outputs = dict(outputs or {})
    _end(ctx, run, child, State.WARNING if child_ctx.warning else State.SUCCESS,
         child_ctx.warning)


def _end(ctx: TaskContext, run: TaskRun, child: Task, state: State, error: str | None,
         attempt_state: State | None = None) -> None:
    if run.attempts and not run.attempts[-1].state.current.terminated:
        transition(run.attempts[-1].state, attempt_state or state,
                   what=f"attempt of {run.task_id}")
        run.attempts[-1].error = error
    if state == State.WARNING and child.allow_warning:
        state = State.SUCCESS
    transition(run.state, state, what=f"task {run.task_id}")
    run.error = error
    ctx.store.save_task_run(run)
