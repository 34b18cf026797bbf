"""io.kestra.plugin.scripts.python.Script and python.Commands: Python run by
the task runner; Kestra's `kestra` helper (Kestra.outputs) works unchanged."""

from __future__ import annotations

import shlex

from pydantic import Field

from harrier.common.task import register_task
from harrier.worker.context import TaskContext
from harrier.worker.tasks.script import ScriptTask


@register_task("io.kestra.plugin.scripts.python.Script")
class PythonScript(ScriptTask):
    # The script is Python source: each value lands as a Python literal or as
    # escaped text inside the string literal around it, never as code.
    shell_properties = frozenset({"beforeCommands"})
    script: str
    python: str = "python3"

    def script_lines(self, ctx: TaskContext) -> list[str]:
        source = str(ctx.render(self.script, "script", python=True))
        (ctx.workdir / "main.py").write_text(source, encoding="utf-8")
        return [f"exec {shlex.quote(self.python)} main.py"]


@register_task("io.kestra.plugin.scripts.python.Commands")
class PythonCommands(ScriptTask):
    commands: list[str] = Field(min_length=1)

    def script_lines(self, ctx: TaskContext) -> list[str]:
        return [str(c) for c in ctx.render(self.commands, "commands", shell=True)]
