"""io.kestra.plugin.core.flow.Parallel: run child tasks at the same time,
at most `concurrent` at once (a sliding window; 0: all)."""

from __future__ import annotations

from pydantic import Field

from harrier.common.task import FlowableTask, FlowControl, Task, register_task


@register_task("io.kestra.plugin.core.flow.Parallel", "io.kestra.core.tasks.flows.Parallel")
class Parallel(FlowableTask):
    tasks: list[Task] = Field(min_length=1)
    # Kestra's `concurrent`: at most this many children at once; 0 is no limit.
    concurrent: int = Field(0, ge=0)

    def start(self, ctl: FlowControl) -> None:
        ctl.run_block("tasks", window=self.concurrent)
