"""io.kestra.plugin.core.flow.Pause: stop the execution (PAUSED) until it is
resumed through the API or the CLI, with the typed `onResume` inputs as the
task's `onResume` output, or until `pauseDuration` passes (then `behavior`
says what happens). A paused run holds no worker slot (worker.context.Waiting)
and lives in the store only, so it survives restarts of every process.
Followed: Kestra's Pause.java (Behavior RESUME/WARN/FAIL/CANCEL, Output onResume)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Literal

from pydantic import Field, field_validator

from harrier.common.dispatch import FlowRef, advance_message, publish
from harrier.common.durations import format_duration, parse_duration
from harrier.common.inputs import InputSpec
from harrier.common.state import State
from harrier.common.task import Task, register_task
from harrier.worker.context import TaskContext, Waiting
from harrier.worker.pauses import PAUSE_EXPIRED, PAUSE_TYPE


@register_task(PAUSE_TYPE, "io.kestra.core.tasks.flows.Pause")
class Pause(Task):
    pause_duration: timedelta | None = Field(None, alias="pauseDuration")
    behavior: Literal["RESUME", "WARN", "FAIL", "CANCEL"] = "RESUME"
    on_resume: list[InputSpec] = Field(default_factory=list, alias="onResume")

    @field_validator("pause_duration", mode="before")
    @classmethod
    def _duration(cls, value: object) -> object:
        return parse_duration(value) if isinstance(value, str) else value

    def run(self, ctx: TaskContext) -> dict[str, Any] | Waiting:
        execution, run = ctx.execution, ctx.task_run
        ref = FlowRef(execution.namespace, execution.flow_id, execution.flow_revision)
        duration = self.pause_duration

        def paused() -> None:
            ctx.store.change_execution_state(execution.id, State.PAUSED,
                                             only_from=(State.RUNNING,))
            if duration is not None:
                # Held by the broker until due (Redis: in its unacked set, given
                # back to another worker if this one goes away).
                publish([advance_message(ref, execution.id, PAUSE_EXPIRED, task_id=run.id)],
                        countdown=max(0.0, duration.total_seconds()))

        until = f" for {format_duration(duration)} (then {self.behavior})" if duration else ""
        ctx.log("INFO", f"execution paused{until}; resume it with POST "
                        f"/api/v1/executions/{execution.id}/resume or "
                        f"`harrier executions resume {execution.id}`")
        return Waiting("pause", state=State.PAUSED, then=paused)
