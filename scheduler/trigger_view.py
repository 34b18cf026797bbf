"""What operators see of a flow's triggers and what they can do to them: each
trigger's state (enabled, last and next fire), switching it off and on at run
time, and backfilling a Schedule trigger's past ticks on demand."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis

from harrier.common.cron import next_after
from harrier.common.errors import HarrierError
from harrier.common.flow import Flow
from harrier.common.inputs import coerce_inputs
from harrier.common.state import iso
from harrier.common.triggers import ScheduleTrigger, Trigger
from harrier.scheduler.backfill import BackfillError, backfill_ticks
from harrier.scheduler.firing import FireContext, fire_tick, schedule_of
from harrier.scheduler.flow_catalog import ScheduledTrigger, trigger_key_text
from harrier.scheduler.tick_claim import last_fired_many
from harrier.scheduler.trigger_state import TriggerStates

# A backfill fires in the request that asks for it: bound its cost.
MAX_BACKFILL_TICKS = 1000


class TriggerNotFound(HarrierError):
    """The flow has no trigger with that id."""


@dataclass(frozen=True)
class TriggerView:
    flow: Flow
    trigger: Trigger
    disabled_at_runtime: bool
    last_fired: datetime | None
    next_fire: datetime | None

    @property
    def key(self) -> str:
        return trigger_key_text((self.flow.namespace, self.flow.id, self.trigger.id))

    @property
    def disabled(self) -> bool:
        return self.flow.disabled or self.trigger.disabled or self.disabled_at_runtime

    def to_json(self) -> dict[str, Any]:
        """Kestra's Trigger (context) fields, plus what the YAML declares."""
        data: dict[str, Any] = {
            "namespace": self.flow.namespace, "flowId": self.flow.id,
            "triggerId": self.trigger.id, "type": self.trigger.type,
            "disabled": self.disabled,
            # Harrier: disabled in the YAML (or the flow is): only an edit enables it.
            "disabledInFlow": self.flow.disabled or self.trigger.disabled,
            "date": iso(self.last_fired) if self.last_fired else None,
            "nextExecutionDate": iso(self.next_fire) if self.next_fire else None,
            "backfill": None,
        }
        if isinstance(self.trigger, ScheduleTrigger):
            data["cron"] = self.trigger.cron
            data["timezone"] = self.trigger.timezone
        return data


def _redis_of(store: object) -> redis.Redis | None:
    client = getattr(store, "redis", None)
    return client if isinstance(client, redis.Redis) else None


def trigger_views(flows: list[Flow], states: TriggerStates, store: object,
                  now: datetime | None = None) -> list[TriggerView]:
    """Every trigger of these flows, with one read of the disabled set and one
    of the last fired ticks (Redis only; embedded mode fires nothing)."""
    moment = now or datetime.now(UTC)
    disabled = states.disabled_keys()
    pairs = [(flow, trigger) for flow in flows for trigger in flow.triggers]
    keys = [trigger_key_text((f.namespace, f.id, t.id)) for f, t in pairs]
    client = _redis_of(store)
    fired: Mapping[str, datetime | None] = last_fired_many(client, keys) if client else {}
    views = []
    for (flow, trigger), key in zip(pairs, keys, strict=True):
        view = TriggerView(flow, trigger, key in disabled, fired.get(key), None)
        if isinstance(trigger, ScheduleTrigger) and not view.disabled:
            view = TriggerView(flow, trigger, view.disabled_at_runtime, view.last_fired,
                               next_after(schedule_of(trigger), moment))
        views.append(view)
    return views


def find_trigger(flow: Flow, trigger_id: str) -> Trigger:
    for trigger in flow.triggers:
        if trigger.id == trigger_id:
            return trigger
    known = ", ".join(t.id for t in flow.triggers) or "none"
    raise TriggerNotFound(f"flow {flow.namespace}.{flow.id} has no trigger {trigger_id!r} "
                          f"(its triggers: {known})")


@dataclass(frozen=True)
class BackfillResult:
    executions: list[dict[str, str]]  # {"tick", "executionId"}
    already_fired: list[str]


def run_backfill(context: FireContext, flow: Flow, trigger: Trigger, start: datetime,
                 end: datetime, *, inputs: Mapping[str, Any] | None = None,
                 labels: Mapping[str, str] | None = None) -> BackfillResult:
    """Fire every tick of a Schedule trigger in [start, end] once (ticks already
    fired are skipped), like `harrier backfill`; at most MAX_BACKFILL_TICKS."""
    if not isinstance(trigger, ScheduleTrigger):
        raise BackfillError(f"trigger {trigger.id!r} is a {trigger.type}: only Schedule "
                            "triggers can be backfilled")
    start = start if start.tzinfo else start.replace(tzinfo=UTC)
    end = end if end.tzinfo else end.replace(tzinfo=UTC)
    ticks = []
    for tick in backfill_ticks(schedule_of(trigger), start, end):
        ticks.append(tick)
        if len(ticks) > MAX_BACKFILL_TICKS:
            raise BackfillError(f"the range {iso(start)} to {iso(end)} holds more than "
                                f"{MAX_BACKFILL_TICKS} ticks of {trigger.cron!r}; backfill "
                                "a shorter range (or use `harrier backfill`)")
    entry = ScheduledTrigger(flow, trigger)
    merged_inputs = {**trigger.inputs, **(inputs or {})}
    coerce_inputs(flow.inputs, merged_inputs)  # InputError now, not one log line per tick
    fired: list[dict[str, str]] = []
    skipped: list[str] = []
    for tick in ticks:
        execution_id = fire_tick(context, entry, tick, why="backfill", record=False,
                                 inputs=merged_inputs, labels=labels)
        if execution_id is None:
            skipped.append(iso(tick))
        else:
            fired.append({"tick": iso(tick), "executionId": execution_id})
    return BackfillResult(fired, skipped)
