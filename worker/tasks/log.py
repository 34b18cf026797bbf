"""io.kestra.plugin.core.log.Log: write a rendered message to the execution's logs."""

from __future__ import annotations

from typing import Any, Literal

from harrier.common.task import Task, register_task
from harrier.worker.context import TaskContext


@register_task("io.kestra.plugin.core.log.Log", "io.kestra.core.tasks.log.Log")
class Log(Task):
    message: str | list[str]
    level: Literal["TRACE", "DEBUG", "INFO", "WARN", "ERROR"] = "INFO"

    def run(self, ctx: TaskContext) -> dict[str, Any]:
        messages = self.message if isinstance(self.message, list) else [self.message]
        for index, message in enumerate(messages):
            field = "message" if isinstance(self.message, str) else f"message[{index}]"
            ctx.log(self.level, str(ctx.render(message, field)))
        return {}
