"""Fire one Schedule tick: win its Redis claim (which records the fire as
pending, with the execution id it will have), create and enqueue the
execution with Kestra's trigger variables, record it as fired. Shared by the
trigger loop, recovery and backfill, so every path is exactly-once; a fire
whose claimant died half-way is completed by another replica (complete_fire)."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import redis
from celery import Celery
from kombu.exceptions import KombuError

from harrier.common.cron import CronSchedule, next_after, parse_cron, previous_before
from harrier.common.errors import ExecutionNotFound, HarrierError, InputError, StoreUnavailable
from harrier.common.execution import new_id
from harrier.common.metrics import recorder
from harrier.common.state import State
from harrier.common.store import ExecutionStore
from harrier.common.trigger_conditions import ConditionError
from harrier.common.triggers import ScheduleTrigger
from harrier.scheduler.executions import create_execution, resume_start, start_execution
from harrier.scheduler.flow_catalog import ScheduledTrigger, trigger_key_text
from harrier.scheduler.tick_claim import PendingFire, claim_tick, fire_done, record_fired

log = logging.getLogger("harrier.scheduler.triggers")

SCHEDULE_TYPE = "io.kestra.plugin.core.trigger.Schedule"

# A fault hook for tests only: called between winning a claim and creating its
# execution, where a test kills the process (the moment a real crash is hardest
# to hit). Never set in production code.
after_claim: Callable[[PendingFire], None] | None = None


@dataclass
class FireContext:
    """What firing needs: the store, the Celery app, the Redis holding claims."""

    store: ExecutionStore
    app: Celery
    redis: redis.Redis
    replica: str = field(default_factory=lambda: f"{socket.gethostname()}")
    secrets: Mapping[str, str] = field(default_factory=dict)  # for conditions' templates


@lru_cache(maxsize=65536)
def _parse(cron: str, with_seconds: bool, timezone: str) -> CronSchedule:
    return parse_cron(cron, with_seconds=with_seconds, timezone=timezone)


def schedule_of(trigger: ScheduleTrigger) -> CronSchedule:
    return _parse(trigger.cron, trigger.with_seconds, trigger.timezone)


def _zoned_iso(tick: datetime, schedule: CronSchedule) -> str:
    # Kestra hands templates a ZonedDateTime in the trigger's timezone.
    text = tick.astimezone(schedule.zone).isoformat()
    return text.replace("+00:00", "Z") if schedule.timezone == "UTC" else text


def trigger_variables(schedule: CronSchedule, tick: datetime) -> dict[str, Any]:
    """`trigger.*` as Kestra's Schedule trigger exposes them."""
    return {"type": SCHEDULE_TYPE, "date": _zoned_iso(tick, schedule),
            "next": _zoned_iso(next_after(schedule, tick), schedule),
            "previous": _zoned_iso(previous_before(schedule, tick), schedule)}


def fire_tick(context: FireContext, entry: ScheduledTrigger, tick: datetime, *,
              inputs: Mapping[str, Any] | None = None,
              labels: Mapping[str, str] | None = None, why: str = "tick",
              record: bool = True) -> str | None:
    """The execution id if this replica fired the tick; None if another one had
    already claimed it (or the execution could not be created, which is logged).
    Raises StoreUnavailable when Redis cannot be reached to claim: nothing fired.
    `record=False` (backfills) leaves the trigger's last fired tick alone, so a
    backfill never makes recovery replay the time between it and now."""
    key = trigger_key_text(entry.key)
    fire = PendingFire(key, tick, new_id(), context.replica, time.time(), {
        "why": why, "record": record,
        "inputs": dict(inputs) if inputs is not None else None,
        "labels": dict(labels) if labels is not None else None})
    if not claim_tick(context.redis, key, tick, owner=context.replica, pending=fire):
        return None
    if after_claim is not None:
        after_claim(fire)
    return complete_fire(context, entry, fire, resume=False)


def complete_fire(context: FireContext, entry: ScheduledTrigger, fire: PendingFire, *,
                  resume: bool = True) -> str | None:
    """Create and enqueue the claimed fire's execution (with the id the claim
    recorded) and clear its pending record. `resume`: the claimant died part-way
    (another replica took the fire over): the execution may exist, even be
    started, already. The execution id, or None if it could not be created."""
    flow = entry.flow
    tick = fire.tick
    why = str(fire.details.get("why") or "tick")
    inputs = fire.details.get("inputs")
    created = False
    variables = trigger_variables(schedule_of(entry.trigger), tick) | (
        {"backfill": True} if why == "backfill" else {})
    try:
        head = None
        if resume:
            try:
                head = context.store.execution_head(fire.execution_id)
            except ExecutionNotFound:
                head = None
        if head is None and not _conditions_hold(context, entry, variables, tick):
            _fire_done(context, fire)
            return None
        if head is None:
            execution = create_execution(
                context.store, flow, entry.trigger.inputs if inputs is None else inputs,
                trigger=variables, labels=fire.details.get("labels"),
                execution_id=fire.execution_id)
            created = True
            start_execution(context.app, flow, execution, store=context.store)
        elif head.state.current == State.CREATED:
            created = True
            resume_start(context.app, flow, head, store=context.store)
        else:
            created = True  # it started: the claimant died after enqueuing it
    except InputError as exc:
        log.error("flow %s.%s trigger %s: the trigger's inputs are not valid, tick %s "
                  "skipped:\n%s", flow.namespace, flow.id, entry.trigger.id,
                  _utc_iso(tick), exc)
    except (HarrierError, redis.RedisError, KombuError, OSError) as exc:
        # The fire stays pending: a replica completes it once the store answers.
        log.error("flow %s.%s trigger %s: tick %s claimed but its execution %s could not "
                  "be %s (a scheduler replica will complete it): %s", flow.namespace, flow.id,
                  entry.trigger.id, _utc_iso(tick), fire.execution_id,
                  "enqueued" if created else "created", exc)
        return fire.execution_id if created else None
    else:
        recorder().trigger_fired(type(entry.trigger).type_names[0], why,
                                 (datetime.now(UTC) - tick).total_seconds())
        log.info("fired flow %s.%s (trigger %s, %s) at tick %s -> execution %s",
                 flow.namespace, flow.id, entry.trigger.id,
                 why if not resume else f"{why}, completed for a dead replica",
                 _utc_iso(tick), fire.execution_id)
    _fire_done(context, fire)
    return fire.execution_id if created else None


def _fire_done(context: FireContext, fire: PendingFire) -> None:
    try:
        fire_done(context.redis, fire.trigger_key, fire.tick)
        if fire.details.get("record", True):
            record_fired(context.redis, fire.trigger_key, fire.tick)
    except StoreUnavailable as exc:
        log.warning("could not record tick %s of %s as fired: %s", _utc_iso(fire.tick),
                    fire.trigger_key, exc)


def _conditions_hold(context: FireContext, entry: ScheduledTrigger, variables: dict[str, Any],
                     tick: datetime) -> bool:
    """The trigger's `conditions` and `when` for this tick (Kestra skips the tick
    when one is false; one that cannot be evaluated is logged and skips it too)."""
    trigger = entry.trigger
    if not trigger.conditions and trigger.when is None:
        return True
    flow = entry.flow
    try:
        if trigger.should_fire({"trigger": variables,
                                "flow": {"id": flow.id, "namespace": flow.namespace}},
                               context.secrets):
            return True
    except ConditionError as exc:
        log.error("flow %s.%s trigger %s: tick %s skipped, a condition cannot be evaluated: "
                  "%s", flow.namespace, flow.id, trigger.id, _utc_iso(tick), exc)
        return False
    log.info("flow %s.%s trigger %s: tick %s skipped, its conditions are false",
             flow.namespace, flow.id, trigger.id, _utc_iso(tick))
    return False


def _utc_iso(tick: datetime) -> str:
    return tick.astimezone(UTC).isoformat().replace("+00:00", "Z")
