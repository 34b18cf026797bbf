"""Trigger declarations of a flow (Schedule, Webhook): validated data only;
the scheduler evaluates them."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from harrier.common.cron import parse_cron
from harrier.common.task import TASK_ID_PATTERN


class Trigger(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="forbid", populate_by_name=True, frozen=True)
    type_names: ClassVar[tuple[str, ...]] = ()

    id: str = Field(pattern=TASK_ID_PATTERN)
    type: str
    description: str | None = None
    disabled: bool = False
    inputs: dict[str, Any] = Field(default_factory=dict)
    conditions: list[dict[str, Any]] = Field(default_factory=list)
    stop_after: list[str] = Field(default_factory=list, alias="stopAfter")


class Backfill(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="forbid", populate_by_name=True, frozen=True)
    start: datetime
    end: datetime | None = None
    inputs: dict[str, Any] = Field(default_factory=dict)
    labels: dict[str, str] | list[dict[str, str]] = Field(default_factory=dict)


class ScheduleTrigger(Trigger):
    type_names = ("io.kestra.plugin.core.trigger.Schedule",
                  "io.kestra.core.models.triggers.types.Schedule")

    # Before `cron`: the cron check reads it.
    with_seconds: bool = Field(False, alias="withSeconds")
    cron: str
    timezone: str = "UTC"
    # Kestra's default is ALL: a scheduler that was down fires every missed tick.
    recover_missed_schedules: Literal["ALL", "LAST", "NONE"] = Field(
        "ALL", alias="recoverMissedSchedules")
    backfill: Backfill | None = None
    late_maximum_delay: str | None = Field(None, alias="lateMaximumDelay")

    # Two field checks, not one model check: a bad cron and a bad timezone are
    # both reported, each at its own line.
    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, value: str, info: ValidationInfo) -> str:
        parse_cron(value, with_seconds=bool(info.data.get("with_seconds")))
        return value

    @field_validator("timezone")
    @classmethod
    def _valid_timezone(cls, value: str) -> str:
        parse_cron("* * * * *", timezone=value)
        return value


class WebhookTrigger(Trigger):
    type_names = ("io.kestra.plugin.core.trigger.Webhook",
                  "io.kestra.core.models.triggers.types.Webhook")

    key: str = Field(min_length=1)

    @field_validator("key")
    @classmethod
    def _url_safe(cls, value: str) -> str:
        if is_template(value):
            return value  # rendered (secrets, flow.id) when a request is matched
        if "/" in value or any(c.isspace() for c in value):
            raise ValueError("the webhook key must not contain '/' or spaces")
        return value


def is_template(text: str) -> bool:
    return "{{" in text or "{%" in text


TRIGGER_TYPES: dict[str, type[Trigger]] = {
    name: cls for cls in (ScheduleTrigger, WebhookTrigger) for name in cls.type_names
}
