"""io.kestra.plugin.core.flow.If: render a condition when the If starts and
run its `then` or `else` block."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from harrier.common.state import State
from harrier.common.task import FlowableTask, FlowControl, Task, register_task
from harrier.common.truth import is_true


@register_task("io.kestra.plugin.core.flow.If", "io.kestra.core.tasks.flows.If")
class If(FlowableTask):
    # The UI timeline shows only the branch taken once it is decided.
    layout: ClassVar[str] = "decide"
    child_properties: ClassVar[tuple[str, ...]] = ("then", "else")

    condition: str | bool
    then: list[Task] = Field(min_length=1)
    else_: list[Task] = Field(default_factory=list, alias="else")

    def start(self, ctl: FlowControl) -> None:
        result = is_true(ctl.render(self.condition, "condition"))
        ctl.set_outputs({"evaluationResult": result})
        block = "then" if result else "else"
        if block == "else" and not self.else_:
            ctl.end(State.SUCCESS)  # false and nothing to do otherwise
        else:
            ctl.run_block(block)
