"""io.kestra.plugin.core.flow.Pause: stop the execution (PAUSED) until it is
resumed through the API or the CLI, with the typed `onResume` inputs as the
task's `onResume` output, or until `pauseDuration` passes (then `behavior`
says what happens) or, without it, the task's `timeout` (then it fails). A
paused run holds no worker slot (worker.context.Waiting) and lives in the
store only, so it survives restarts of every process.
Followed: Kestra's Pause.java (Behavior RESUME/WARN/FAIL/CANCEL, Output onResume,
the deprecated `delay` that sets pauseDuration) and ExecutorService's
handlePausedDelay (pauseDuration first, else timeout ending the Pause FAILED)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Literal

from pydantic import AliasChoices, Field, field_validator, model_validator

from harrier.common.dispatch import FlowRef, advance_message, publish
from harrier.common.durations import format_duration, parse_duration
from harrier.common.inputs import InputSpec
from harrier.common.state import State
from harrier.common.task import Task, register_task
from harrier.worker.context import TaskContext, Waiting
from harrier.worker.pauses import PAUSE_EXPIRED, PAUSE_TYPE


@register_task(PAUSE_TYPE, "io.kestra.core.tasks.flows.Pause")
class Pause(Task):
    # `delay` is Kestra's deprecated name of pauseDuration (its setDelay sets both).
    pause_duration: timedelta | None = Field(
        None, alias="pauseDuration",
        validation_alias=AliasChoices("pauseDuration", "delay", "pause_duration"))
    behavior: Literal["RESUME", "WARN", "FAIL", "CANCEL"] = "RESUME"
    on_resume: list[InputSpec] = Field(default_factory=list, alias="onResume")

    @model_validator(mode="before")
    @classmethod
    def _deprecated(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        if data.get("tasks") is not None:
            raise ValueError("Pause `tasks` is not supported yet (deprecated in Kestra): put "
                             "the tasks after the Pause, they run once it is resumed")
        if data.get("delay") is not None and data.get("pauseDuration") is not None:
            raise ValueError("delay and pauseDuration are the same property (delay is "
                             "Kestra's deprecated name): give only pauseDuration")
        return {k: v for k, v in data.items()
                if not (k in ("delay", "pauseDuration", "tasks") and v is None)}

    def expiry(self) -> tuple[timedelta, str] | None:
        """When the pause ends by itself, and how: `pauseDuration` with its
        `behavior`, else the task's `timeout`, which fails it (as Kestra)."""
        if self.pause_duration is not None:
            return self.pause_duration, self.behavior
        if self.timeout is not None:
            return self.timeout, "FAIL"
        return None

    @field_validator("pause_duration", mode="before")
    @classmethod
    def _duration(cls, value: object) -> object:
        return parse_duration(value) if isinstance(value, str) else value

    def run(self, ctx: TaskContext) -> dict[str, Any] | Waiting:
        execution, run = ctx.execution, ctx.task_run
        ref = FlowRef(execution.namespace, execution.flow_id, execution.flow_revision)
        expiry = self.expiry()
        duration = expiry[0] if expiry else None

        def paused() -> None:
            ctx.store.change_execution_state(execution.id, State.PAUSED,
                                             only_from=(State.RUNNING,))
            if duration is not None:
                # Held by the broker until due (Redis: in its unacked set, given
                # back to another worker if this one goes away).
                publish([advance_message(ref, execution.id, PAUSE_EXPIRED, task_id=run.id)],
                        countdown=max(0.0, duration.total_seconds()))

        until = f" for {format_duration(expiry[0])} (then {expiry[1]})" if expiry else ""
        ctx.log("INFO", f"execution paused{until}; resume it with POST "
                        f"/api/v1/executions/{execution.id}/resume or "
                        f"`harrier executions resume {execution.id}`")
        return Waiting("pause", state=State.PAUSED, then=paused)
