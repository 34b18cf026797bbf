"""io.kestra.plugin.scripts.shell.Commands and shell.Script: shell commands run
by the task runner."""

from __future__ import annotations

from pydantic import Field

from harrier.common.task import register_task
from harrier.worker.context import TaskContext
from harrier.worker.tasks.script import ScriptTask


@register_task("io.kestra.plugin.scripts.shell.Commands", "io.kestra.core.tasks.scripts.Bash",
               "io.kestra.plugin.core.script.Commands")
class Commands(ScriptTask):
    commands: list[str] = Field(min_length=1)

    def script_lines(self, ctx: TaskContext) -> list[str]:
        return [str(c) for c in ctx.render(self.commands, "commands", shell=True)]


@register_task("io.kestra.plugin.scripts.shell.Script")
class ShellScript(ScriptTask):
    shell_properties = frozenset({"script", "beforeCommands"})
    script: str

    def script_lines(self, ctx: TaskContext) -> list[str]:
        return [str(ctx.render(self.script, "script", shell=True))]
