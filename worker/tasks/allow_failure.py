"""io.kestra.plugin.core.flow.AllowFailure: a Sequential whose failure does
not fail the flow: the group ends WARNING (after its errors tasks) and the
flow goes on, as a flowable with `allowFailure: true` does."""

from __future__ import annotations

from pydantic import Field

from harrier.common.task import FlowableTask, Task, register_task


@register_task("io.kestra.plugin.core.flow.AllowFailure", "io.kestra.core.tasks.flows.AllowFailure")
class AllowFailure(FlowableTask):
    tasks: list[Task] = Field(min_length=1)
    allow_failure: bool = Field(True, alias="allowFailure")
