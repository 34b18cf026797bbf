"""io.kestra.plugin.spark.SparkCLI: spark-submit commands run by the task
runner; in cluster mode the task follows the driver to its end."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from common.task import register_task
from worker.context import TaskContext
from worker.tasks.script import ScriptTask


@register_task("io.kestra.plugin.spark.SparkCLI")
class SparkCLI(ScriptTask):
    commands: list[str] = Field(min_length=1)
    # Kestra's SparkCLI returns once spark-submit exits; in cluster mode that is
    # when the driver is *submitted*. Harrier waits for the driver by default.
    wait_for_completion: bool = Field(True, alias="waitForCompletion")

    def script_lines(self, ctx: TaskContext) -> list[str]:
        return [str(c) for c in ctx.render(self.commands, "commands", shell=True)]

    def run(self, ctx: TaskContext) -> dict[str, Any]:
        result = self.run_script(ctx)
        return self.outputs_of(ctx, result)
