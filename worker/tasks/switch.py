"""io.kestra.plugin.core.flow.Switch: render `value` in the worker and run the
matching case (or `defaults`), replacing itself with that branch's canvas."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from harrier.common.task import FlowableTask, Task, register_task
from harrier.worker.context import TaskContext


@register_task("io.kestra.plugin.core.flow.Switch", "io.kestra.core.tasks.flows.Switch")
class Switch(FlowableTask):
    child_properties: ClassVar[tuple[str, ...]] = ("cases", "defaults")
    child_maps: ClassVar[tuple[str, ...]] = ("cases",)

    value: str
    cases: dict[str, list[Task]] = Field(default_factory=dict)
    defaults: list[Task] = Field(default_factory=list)

    def choose(self, ctx: TaskContext) -> tuple[list[Task], dict[str, Any]]:
        value = str(ctx.render(self.value, "value"))
        branch = self.cases.get(value)
        return (self.defaults if branch is None else branch), {
            "value": value, "defaults": branch is None}
