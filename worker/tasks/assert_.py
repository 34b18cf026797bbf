"""io.kestra.plugin.core.execution.Assert: render every condition; each falsy
one is logged, and the task fails if any was (with `errorMessage` appended)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from harrier.common.errors import TaskFailed
from harrier.common.task import Task, register_task
from harrier.common.truth import is_true
from harrier.worker.context import TaskContext


@register_task("io.kestra.plugin.core.execution.Assert")
class Assert(Task):
    conditions: list[str] = Field(min_length=1)
    error_message: str | None = Field(None, alias="errorMessage")

    def run(self, ctx: TaskContext) -> dict[str, Any]:
        failed = 0
        for index, condition in enumerate(self.conditions):
            if not is_true(ctx.render(condition, f"conditions[{index}]")):
                ctx.log("ERROR", f"Assertion `{condition}` failed!")
                failed += 1
        if failed:
            message = f"{failed} assertion(s) failed"
            if self.error_message:
                message += f": {ctx.render(self.error_message, 'errorMessage')}"
            raise TaskFailed(message)
        return {}
