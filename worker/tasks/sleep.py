"""io.kestra.plugin.core.flow.Sleep: wait, interruptibly by a kill."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pydantic import field_validator

from harrier.common.durations import parse_duration
from harrier.common.errors import TaskKilled
from harrier.common.task import Task, register_task
from harrier.worker.context import TaskContext


@register_task("io.kestra.plugin.core.flow.Sleep")
class Sleep(Task):
    duration: timedelta

    @field_validator("duration", mode="before")
    @classmethod
    def _duration(cls, value: object) -> object:
        return parse_duration(value) if isinstance(value, str) else value

    def run(self, ctx: TaskContext) -> dict[str, Any]:
        if ctx.cancel.wait(self.duration.total_seconds()):
            raise TaskKilled()
        return {}
