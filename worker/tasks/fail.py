"""io.kestra.plugin.core.execution.Fail: fail on purpose, optionally when a
condition renders true."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from harrier.common.errors import TaskFailed
from harrier.common.task import Task, register_task
from harrier.common.truth import is_true
from harrier.worker.context import TaskContext


@register_task("io.kestra.plugin.core.execution.Fail", "io.kestra.core.tasks.executions.Fail")
class Fail(Task):
    condition: str | bool | None = None
    error_message: str = Field("Flow failed", alias="errorMessage")

    def run(self, ctx: TaskContext) -> dict[str, Any]:
        if self.condition is None or is_true(ctx.render(self.condition, "condition")):
            # Retried like any task when it has a `retry`, as in Kestra.
            raise TaskFailed(str(ctx.render(self.error_message, "errorMessage")))
        return {}
