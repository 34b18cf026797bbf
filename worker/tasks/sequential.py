"""io.kestra.plugin.core.flow.Sequential: run child tasks one after the other
(compiled to a Celery chain)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from harrier.common.task import FlowableTask, Task, register_task


@register_task("io.kestra.plugin.core.flow.Sequential", "io.kestra.core.tasks.flows.Sequential")
class Sequential(FlowableTask):
    layout: ClassVar[Literal["parallel", "sequence", "decide"]] = "sequence"
    tasks: list[Task] = Field(min_length=1)
