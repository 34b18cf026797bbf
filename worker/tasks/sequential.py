"""io.kestra.plugin.core.flow.Sequential: run child tasks one after the other
(compiled to a Celery chain)."""

from __future__ import annotations

from pydantic import Field

from common.task import FlowableTask, Task, register_task


@register_task("io.kestra.plugin.core.flow.Sequential", "io.kestra.core.tasks.flows.Sequential")
class Sequential(FlowableTask):
    tasks: list[Task] = Field(min_length=1)
