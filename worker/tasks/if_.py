"""io.kestra.plugin.core.flow.If: render a condition in the worker and run the
`then` or `else` branch, replacing itself with that branch's canvas."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from harrier.common.task import FlowableTask, Task, register_task
from harrier.worker.context import TaskContext
from harrier.worker.tasks.conditions import is_true


@register_task("io.kestra.plugin.core.flow.If", "io.kestra.core.tasks.flows.If")
class If(FlowableTask):
    child_properties: ClassVar[tuple[str, ...]] = ("then", "else")

    condition: str | bool
    then: list[Task] = Field(min_length=1)
    else_: list[Task] = Field(default_factory=list, alias="else")

    def choose(self, ctx: TaskContext) -> tuple[list[Task], dict[str, Any]]:
        """The branch to run and the outputs recorded on the If's task run."""
        result = is_true(ctx.render(self.condition, "condition"))
        return (self.then if result else self.else_), {"evaluationResult": result}
