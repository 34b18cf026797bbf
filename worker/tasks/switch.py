"""io.kestra.plugin.core.flow.Switch: render `value` when the Switch starts and
run the matching case (or `defaults`)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from harrier.common.task import FlowableTask, FlowControl, Task, register_task


@register_task("io.kestra.plugin.core.flow.Switch", "io.kestra.core.tasks.flows.Switch")
class Switch(FlowableTask):
    # The UI timeline shows only the branch taken once it is decided.
    layout: ClassVar[str] = "decide"
    child_properties: ClassVar[tuple[str, ...]] = ("cases", "defaults")
    child_maps: ClassVar[tuple[str, ...]] = ("cases",)

    value: str
    cases: dict[str, list[Task]] = Field(default_factory=dict)
    defaults: list[Task] = Field(default_factory=list)

    def start(self, ctl: FlowControl) -> None:
        value = str(ctl.render(self.value, "value"))
        matched = value in self.cases
        ctl.set_outputs({"value": value, "defaults": not matched})
        if matched:
            ctl.run_block(f"cases.{value}")
        elif self.defaults:
            ctl.run_block("defaults")
        else:
            # Kestra resolves no child tasks and fails the Switch.
            ctl.fail(f"no case matches the value {value!r} and there are no defaults")
