"""io.kestra.plugin.core.flow.Parallel: run child tasks at the same time
(compiled to a Celery group)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from harrier.common.task import FlowableTask, Task, register_task


@register_task("io.kestra.plugin.core.flow.Parallel", "io.kestra.core.tasks.flows.Parallel")
class Parallel(FlowableTask):
    layout: ClassVar[Literal["parallel", "sequence", "decide"]] = "parallel"
    tasks: list[Task] = Field(min_length=1)
    # Kestra's `concurrent`: at most this many children at once; 0 is no limit.
    concurrent: int = Field(0, ge=0)
