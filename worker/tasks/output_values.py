"""io.kestra.plugin.core.output.OutputValues: render `values` (a map) into the
task's `values` output, for later tasks (`{{ outputs.task.values.key }}`)."""

from __future__ import annotations

from typing import Any

from harrier.common.task import Task, register_task
from harrier.worker.context import TaskContext


@register_task("io.kestra.plugin.core.output.OutputValues",
               "io.kestra.core.tasks.outputs.OutputValues")
class OutputValues(Task):
    values: dict[str, Any]

    def run(self, ctx: TaskContext) -> dict[str, Any]:
        return {"values": ctx.render(self.values, "values")}
