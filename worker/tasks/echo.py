"""io.kestra.plugin.core.debug.Echo: Kestra's deprecated predecessor of Log,
still found in older flows: logs the rendered `format` at `level`."""

from __future__ import annotations

from typing import Any, Literal

from harrier.common.task import Task, register_task
from harrier.worker.context import TaskContext


@register_task("io.kestra.plugin.core.debug.Echo", "io.kestra.core.tasks.debugs.Echo")
class Echo(Task):
    format: str | None = None
    level: Literal["TRACE", "DEBUG", "INFO", "WARN", "ERROR"] = "INFO"

    def run(self, ctx: TaskContext) -> dict[str, Any]:
        if self.format is not None:
            ctx.log(self.level, str(ctx.render(self.format, "format")))
        return {}
