"""io.kestra.plugin.core.debug.Return: render `format` into the `value` output."""

from __future__ import annotations

from typing import Any

from harrier.common.task import Task, register_task
from harrier.worker.context import TaskContext


@register_task("io.kestra.plugin.core.debug.Return", "io.kestra.core.tasks.debugs.Return")
class Return(Task):
    format: str

    def run(self, ctx: TaskContext) -> dict[str, Any]:
        return {"value": ctx.render(self.format, "format")}
