"""io.kestra.plugin.core.debug.Return: render `format` into the `value` output."""

from __future__ import annotations

from typing import Any

from harrier.common.task import Task, register_task
from harrier.worker.context import TaskContext


@register_task("io.kestra.plugin.core.debug.Return", "io.kestra.core.tasks.debugs.Return")
class Return(Task):
    format: str | None = None  # optional in Kestra: no format, a null value

    def run(self, ctx: TaskContext) -> dict[str, Any]:
        if self.format is None:
            return {"value": None}
        return {"value": ctx.render(self.format, "format")}
