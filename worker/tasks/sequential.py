"""io.kestra.plugin.core.flow.Sequential: run child tasks one after the other
(FlowableTask's default: the `tasks` block, one task at a time)."""

from __future__ import annotations

from pydantic import Field

from harrier.common.task import FlowableTask, Task, register_task


@register_task("io.kestra.plugin.core.flow.Sequential", "io.kestra.core.tasks.flows.Sequential")
class Sequential(FlowableTask):
    tasks: list[Task] = Field(min_length=1)
