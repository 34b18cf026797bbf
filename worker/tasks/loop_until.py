"""io.kestra.plugin.core.flow.LoopUntil (and its name WaitFor): run `tasks`,
then check `condition`; until it is true, run them again every
`checkFrequency.interval`, at most `maxIterations` times or for `maxDuration`.

Each iteration's task runs are new runs kept beside the earlier ones (the
API and the UI show every iteration); `outputs.task` reads the latest. Between
two iterations nothing holds a worker slot: the next one is a delayed message.
The loop's `iterationCount` output counts from 1, as in Kestra."""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel, ConfigDict, Field, field_validator

from harrier.common.durations import parse_duration
from harrier.common.state import State
from harrier.common.task import FlowableTask, FlowControl, Task, register_task
from harrier.common.truth import is_true


class CheckFrequency(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="forbid", populate_by_name=True,
                              frozen=True)
    # Kestra's defaults: every minute, no limit on iterations or duration.
    interval: timedelta = timedelta(minutes=1)
    max_iterations: int | None = Field(None, ge=1, alias="maxIterations")
    max_duration: timedelta | None = Field(None, alias="maxDuration")

    @field_validator("interval", "max_duration", mode="before")
    @classmethod
    def _duration(cls, value: object) -> object:
        if isinstance(value, str):
            value = parse_duration(value)
        if isinstance(value, timedelta) and value <= timedelta(0):
            raise ValueError("must be a positive duration (e.g. PT30S)")
        return value


@register_task("io.kestra.plugin.core.flow.LoopUntil", "io.kestra.plugin.core.flow.WaitFor")
class LoopUntil(FlowableTask):
    condition: str | bool
    tasks: list[Task] = Field(min_length=1)
    check_frequency: CheckFrequency = Field(
        default_factory=lambda: CheckFrequency.model_validate({}), alias="checkFrequency")
    fail_on_max_reached: bool = Field(False, alias="failOnMaxReached")

    def start(self, ctl: FlowControl) -> None:
        ctl.set_outputs({"iterationCount": 1})
        ctl.run_iteration("tasks", 0)

    def iteration_ended(self, ctl: FlowControl, block: str, iteration: int,
                        state: State) -> None:
        if state not in (State.SUCCESS, State.WARNING):
            ctl.end(state)
            return
        done = iteration + 1
        if is_true(ctl.render(self.condition, "condition")):
            ctl.end(state)
            return
        limits = self.check_frequency
        reached = None
        if limits.max_iterations is not None and done >= limits.max_iterations:
            reached = f"max iterations reached ({limits.max_iterations})"
        elif limits.max_duration is not None and ctl.elapsed() >= limits.max_duration:
            reached = f"max duration reached ({limits.max_duration})"
        if reached is not None:
            ctl.log("WARN", f"{reached}; the condition is still false")
            ctl.end(State.FAILED if self.fail_on_max_reached else state,
                    reached if self.fail_on_max_reached else None)
            return
        ctl.set_outputs({"iterationCount": done + 1})
        ctl.run_iteration(block, done, delay=limits.interval.total_seconds())
