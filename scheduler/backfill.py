"""Backfill: fire every tick of a Schedule trigger in a past range once, from
the trigger's `backfill: {start, end}` (paced by the loop) or from
`harrier backfill`. Tick claims make it exactly-once across replicas."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import redis

from harrier.common.cron import CronSchedule, ticks_between
from harrier.common.errors import HarrierError
from harrier.common.triggers import ScheduleTrigger
from harrier.scheduler.flow_catalog import ScheduledTrigger, TriggerKey, trigger_key_text

log = logging.getLogger("harrier.scheduler.backfill")

BACKFILL_DONE_KEY = "harrier:triggers:backfill_done"  # hash: trigger key -> range fingerprint
_MICRO = timedelta(microseconds=1)


class BackfillError(HarrierError):
    """A backfill cannot run as asked (no such trigger, empty or reversed range)."""


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _fingerprint(trigger: ScheduleTrigger) -> str:
    assert trigger.backfill is not None
    end = trigger.backfill.end
    return f"{_aware(trigger.backfill.start).isoformat()}|{_aware(end).isoformat() if end else ''}"


@dataclass
class BackfillCursor:
    """Where a trigger's declared backfill has got to: ticks in [start, end]."""

    key: TriggerKey
    fingerprint: str
    after: datetime  # the next tick is strictly after this
    end: datetime
    finished: bool = False

    def take(self, schedule: CronSchedule, count: int) -> list[datetime]:
        ticks = ticks_between(schedule, self.after, self.end, limit=count)
        if len(ticks) < count:
            self.finished = True
        if ticks:
            self.after = ticks[-1]
        return ticks

    def mark_done(self, client: redis.Redis) -> None:
        client.hset(BACKFILL_DONE_KEY, trigger_key_text(self.key), self.fingerprint)


def backfill_cursor(client: redis.Redis, key: TriggerKey, trigger: ScheduleTrigger,
                    now: datetime) -> BackfillCursor | None:
    """A cursor for the trigger's `backfill`, or None when it has none or it
    already ran to its end (recorded in Redis, so a restart does not replay it
    after the tick claims have expired). An open end means up to now."""
    if trigger.backfill is None:
        return None
    fingerprint = _fingerprint(trigger)
    done = client.hget(BACKFILL_DONE_KEY, trigger_key_text(key))
    if done is not None and (done.decode() if isinstance(done, bytes) else done) == fingerprint:
        return None
    start = _aware(trigger.backfill.start)
    end = min(_aware(trigger.backfill.end), now) if trigger.backfill.end else now
    log.info("trigger %s: backfilling ticks from %s to %s", trigger_key_text(key),
             start.isoformat(), end.isoformat())
    return BackfillCursor(key, fingerprint, start - _MICRO, end)


def backfill_ticks(schedule: CronSchedule, start: datetime, end: datetime,
                   page: int = 500) -> Iterator[datetime]:
    """Every tick in [start, end], oldest first, computed a page at a time."""
    if end < start:
        raise BackfillError(f"the backfill end {end.isoformat()} is before its start "
                            f"{start.isoformat()}")
    after = start - _MICRO
    while True:
        ticks = ticks_between(schedule, after, end, limit=page)
        yield from ticks
        if len(ticks) < page:
            return
        after = ticks[-1]


def pick_trigger(entries: list[ScheduledTrigger], trigger_id: str | None,
                 flow_name: str) -> ScheduledTrigger:
    """The Schedule trigger named `trigger_id`, or the flow's only one."""
    if trigger_id is not None:
        for entry in entries:
            if entry.trigger.id == trigger_id:
                return entry
        known = ", ".join(e.trigger.id for e in entries) or "none"
        raise BackfillError(f"flow {flow_name} has no enabled Schedule trigger "
                            f"{trigger_id!r} (its Schedule triggers: {known})")
    if len(entries) != 1:
        known = ", ".join(e.trigger.id for e in entries)
        raise BackfillError(f"flow {flow_name} has {len(entries)} enabled Schedule triggers"
                            + (f" ({known}): choose one with --trigger" if entries else ""))
    return entries[0]
