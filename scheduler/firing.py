"""Fire one Schedule tick: win its Redis claim, create and enqueue the
execution with Kestra's trigger variables, record it as fired. Shared by the
trigger loop, recovery and backfill, so every path is exactly-once."""

from __future__ import annotations

import logging
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import redis
from celery import Celery
from kombu.exceptions import KombuError

from harrier.common.cron import CronSchedule, next_after, parse_cron, previous_before
from harrier.common.errors import HarrierError, InputError, StoreUnavailable
from harrier.common.metrics import recorder
from harrier.common.store import ExecutionStore
from harrier.common.triggers import ScheduleTrigger
from harrier.scheduler.executions import create_execution, start_execution
from harrier.scheduler.flow_catalog import ScheduledTrigger, trigger_key_text
from harrier.scheduler.tick_claim import claim_tick, record_fired

log = logging.getLogger("harrier.scheduler.triggers")

SCHEDULE_TYPE = "io.kestra.plugin.core.trigger.Schedule"


@dataclass
class FireContext:
    """What firing needs: the store, the Celery app, the Redis holding claims."""

    store: ExecutionStore
    app: Celery
    redis: redis.Redis
    replica: str = field(default_factory=lambda: f"{socket.gethostname()}")


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
    if not claim_tick(context.redis, key, tick, owner=context.replica):
        return None
    flow = entry.flow
    schedule = schedule_of(entry.trigger)
    execution_id: str | None = None
    try:
        execution = create_execution(
            context.store, flow, entry.trigger.inputs if inputs is None else inputs,
            trigger=trigger_variables(schedule, tick) | (
                {"backfill": True} if why == "backfill" else {}), labels=labels)
        execution_id = execution.id
        start_execution(context.app, flow, execution, store=context.store)
    except InputError as exc:
        log.error("flow %s.%s trigger %s: the trigger's inputs are not valid, tick %s "
                  "skipped:\n%s", flow.namespace, flow.id, entry.trigger.id,
                  _utc_iso(tick), exc)
    except (HarrierError, redis.RedisError, KombuError, OSError) as exc:
        # The tick is claimed: no other replica will fire it. Say so loudly.
        log.error("flow %s.%s trigger %s: tick %s claimed but its execution %s could not "
                  "be %s: %s", flow.namespace, flow.id, entry.trigger.id, _utc_iso(tick),
                  execution_id or "", "enqueued" if execution_id else "created", exc)
    else:
        recorder().trigger_fired(type(entry.trigger).type_names[0], why,
                                 (datetime.now(UTC) - tick).total_seconds())
        log.info("fired flow %s.%s (trigger %s, %s) at tick %s -> execution %s",
                 flow.namespace, flow.id, entry.trigger.id, why, _utc_iso(tick),
                 execution_id)
    if not record:
        return execution_id
    try:
        record_fired(context.redis, key, tick)
    except StoreUnavailable as exc:
        log.warning("could not record tick %s of %s as fired: %s", _utc_iso(tick), key, exc)
    return execution_id


def _utc_iso(tick: datetime) -> str:
    return tick.astimezone(UTC).isoformat().replace("+00:00", "Z")
