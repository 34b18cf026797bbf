"""What every script task shares (Commands, Script, SparkCLI): rendering the
commands with shell-quoted values, input and output files, and turning the
runner's result into outputs or a clear failure."""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

from pydantic import Field, field_validator, model_validator

from harrier.common.errors import TaskFailed, TaskKilled, TaskTimeout
from harrier.common.storage import is_uri
from harrier.common.task import Task, unsupported_runner_options
from harrier.worker.context import TaskContext
from harrier.worker.execution_files import copy_stored_file, localize_uris, store_task_files
from harrier.worker.runners.base import RunRequest, RunResult


class ScriptTask(Task):
    shell_properties = frozenset({"commands", "beforeCommands"})

    env: dict[str, str] = Field(default_factory=dict)
    interpreter: list[str] = Field(default_factory=lambda: ["/bin/sh", "-c"])
    before_commands: list[str] = Field(default_factory=list, alias="beforeCommands")
    container_image: str | None = Field(None, alias="containerImage")
    input_files: dict[str, str] = Field(default_factory=dict, alias="inputFiles")
    output_files: list[str] = Field(default_factory=list, alias="outputFiles")
    warning_on_std_err: bool = Field(False, alias="warningOnStdErr")
    fail_fast: bool = Field(True, alias="failFast")
    # Pre-0.17 Kestra syntax, still pasted: `runner: PROCESS` and `docker: {image: ...}`.
    runner_name: str | None = Field(None, alias="runner")
    docker: dict[str, Any] | None = None

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
    def _legacy_runner(self) -> ScriptTask:
        if self.runner_name is not None or self.docker is not None:
            unsupported_runner_options(self.runner_name or "docker", dict(self.docker or {}))
        return self

    def script_lines(self, ctx: TaskContext) -> list[str]:
        """The rendered script; subclasses say where it comes from."""
        raise NotImplementedError

    def run(self, ctx: TaskContext) -> dict[str, Any]:
        result = self.run_script(ctx)
        return self.outputs_of(ctx, result)

    def run_script(self, ctx: TaskContext, on_line: Any = None) -> RunResult:
        lines = [str(line) for line in ctx.render(self.before_commands, "beforeCommands",
                                                  shell=True)]
        lines += self.script_lines(ctx)
        lines = [localize_uris(ctx, line, "commands") for line in lines]
        if self.fail_fast and self.interpreter[0].endswith("sh"):
            lines.insert(0, "set -e")
        env = {str(k): str(v) for k, v in ctx.render(self.env, "env").items()}
        for name, content in self.input_files.items():
            target = ctx.workdir / name
            target.parent.mkdir(parents=True, exist_ok=True)
            write_input_file(ctx, target, content, f"inputFiles.{name}")

        def log_line(stream: str, line: str) -> None:
            level = "INFO" if stream == "stdout" else (
                "WARN" if self.warning_on_std_err else "INFO")
            if stream != "stdout" and self.warning_on_std_err:
                # Kestra's warningOnStdErr: output on stderr makes the task a WARNING.
                ctx.warning = "the task wrote to stderr (warningOnStdErr)"
            ctx.log(level, line)
            if on_line is not None:
                on_line(stream, line)

        options = self.runner_options()
        request = RunRequest(
            commands=lines, workdir=ctx.workdir, env=env,
            timeout=self.timeout.total_seconds() if self.timeout else None,
            interpreter=list(self.interpreter), on_line=log_line, cancel=ctx.cancel,
            options=options,
            labels={"harrier.execution": ctx.execution.id, "harrier.taskrun": ctx.task_run.id},
        )
        result = ctx.runner(self).run(request)
        if result.cancelled:
            raise TaskKilled()
        if result.timed_out:
            raise TaskTimeout(f"timed out after {self.timeout} and was killed"
                              + _tail_text(result), exit_code=result.exit_code)
        if result.exit_code != 0:
            raise TaskFailed(f"command exited with code {result.exit_code}"
                             + _tail_text(result), exit_code=result.exit_code)
        return result

    def runner_options(self) -> dict[str, Any]:
        options: dict[str, Any] = dict(self.docker or {})
        if self.task_runner is not None:
            options.update(self.task_runner.options())
        if self.container_image:
            options.setdefault("containerImage", self.container_image)
        return options

    def runner_type(self) -> str | None:
        if self.task_runner is not None:
            return self.task_runner.type
        if self.runner_name:
            return self.runner_name.upper()
        return None

    def outputs_of(self, ctx: TaskContext, result: RunResult) -> dict[str, Any]:
        # Kestra puts `::{"outputs": ...}::` values under `vars`, beside exitCode.
        outputs: dict[str, Any] = {"vars": dict(result.outputs), "exitCode": result.exit_code}
        if self.output_files:
            outputs["outputFiles"] = collect_files(ctx, self.output_files)
        return outputs


def write_input_file(ctx: TaskContext, target: Path, content: str, field: str) -> None:
    """One inputFiles entry: a kestra:// URI (as rendered) is the stored file,
    anything else the text; a Python file (python.Commands' main.py) is
    rendered as Python source."""
    text = str(ctx.render(content, field, python=target.name.endswith(".py")))
    if is_uri(text.strip()):
        copy_stored_file(ctx, text.strip(), target, field)
    else:
        target.write_text(text, encoding="utf-8")


def collect_files(ctx: TaskContext, patterns: list[str]) -> dict[str, str]:
    """outputFiles: the files of the working directory matching the glob
    patterns, copied into storage: relative name -> kestra:// URI."""
    found: dict[str, Path] = {}
    workdir = ctx.workdir
    for pattern in patterns:
        for path in sorted(workdir.glob(pattern)):
            if path.is_file() and ".storage" not in path.relative_to(workdir).parts:
                found[str(path.relative_to(workdir))] = path
    return store_task_files(ctx, found)


def _tail_text(result: RunResult) -> str:
    tail = result.stderr_tail[-10:] or result.stdout_tail[-10:]
    if not tail:
        return ""
    return "; last lines:\n" + "\n".join(tail)
