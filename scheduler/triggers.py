"""The trigger loop every scheduler replica runs: a heap of next fire times
kept in step with the flow catalog, due ticks fired through their Redis
claims, missed ticks recovered per recoverMissedSchedules, backfills paced,
fires of replicas that died between a claim and its execution completed."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from harrier.common.cron import CronSchedule, missed_ticks, previous_before
from harrier.common.errors import StoreUnavailable
from harrier.scheduler.backfill import BackfillCursor, backfill_cursor
from harrier.scheduler.firing import FireContext, complete_fire, fire_tick, schedule_of
from harrier.scheduler.flow_catalog import (
    FlowCatalog,
    ScheduledTrigger,
    TriggerKey,
    trigger_key_text,
)
from harrier.scheduler.schedule_heap import ScheduleHeap
from harrier.scheduler.tick_claim import (
    fire_done,
    last_fired_many,
    record_fired,
    take_stale_pending_fires,
)
from harrier.scheduler.trigger_state import RedisTriggerStates, TriggerStates, stopped_after

log = logging.getLogger("harrier.scheduler.triggers")

Clock = Callable[[], datetime]
DEFAULT_RECOVER_LIMIT = 1000
# A fire still pending this long after its claim lost its claimant (creating an
# execution takes milliseconds); checked every PENDING_CHECK_SECONDS.
PENDING_GRACE_SECONDS = 15.0
PENDING_CHECK_SECONDS = 5.0


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Fired:
    key: TriggerKey
    tick: datetime
    execution_id: str | None  # None: another replica had claimed it


@dataclass
class _Armed:
    entry: ScheduledTrigger
    schedule: CronSchedule


class TriggerLoop:
    """One replica's loop. step() is one iteration (tests drive it with their
    own clock); run() loops until `stop` is set, refreshing the catalog in a
    thread of its own so reading 10,000 files never delays a tick."""

    def __init__(self, catalog: FlowCatalog, context: FireContext, *,
                 clock: Clock = utc_now, recover_limit: int = DEFAULT_RECOVER_LIMIT,
                 max_sleep: float = 1.0, backfill_batch: int = 100,
                 fire_threads: int = 4, states: TriggerStates | None = None,
                 pending_grace: float = PENDING_GRACE_SECONDS) -> None:
        self.catalog = catalog
        self.context = context
        # Triggers disabled at run time (UI, API): their ticks pass without firing.
        self.states = states if states is not None else RedisTriggerStates(context.redis)
        self._disabled: frozenset[str] = frozenset()
        self.clock = clock
        self.recover_limit = recover_limit
        self.max_sleep = max_sleep
        self.backfill_batch = backfill_batch
        self.heap = ScheduleHeap()
        self._armed: dict[TriggerKey, _Armed] = {}
        self._seen_version = -1
        self._to_recover: set[TriggerKey] = set()
        self._pending: deque[tuple[TriggerKey, datetime, str]] = deque()
        self._backfills: dict[TriggerKey, BackfillCursor] = {}
        self._now = clock()
        self.pending_grace = pending_grace
        self._pending_checked = 0.0  # monotonic
        self._pool = ThreadPoolExecutor(max_workers=fire_threads,
                                        thread_name_prefix="harrier-fire") \
            if fire_threads > 1 else None

    def __len__(self) -> int:
        return len(self._armed)

    # -- one iteration
    def step(self, now: datetime | None = None) -> list[Fired]:
        now = now or self.clock()
        self._now = now
        self._sync(now)
        try:
            self._disabled = self.states.disabled_keys()
        except StoreUnavailable as exc:
            log.warning("cannot read disabled triggers (keeping the last known): %s", exc)
        if self._to_recover:
            self._recover(now)
        work: list[tuple[TriggerKey, datetime, str]] = []
        while self._pending:
            work.append(self._pending.popleft())
        work.extend((key, tick, "tick") for key, tick in self.heap.pop_due(now))  # type: ignore[misc]
        work.extend(self._backfill_work(now))
        fired = self._fire_all(work)
        if time.monotonic() - self._pending_checked >= PENDING_CHECK_SECONDS:
            self._pending_checked = time.monotonic()
            fired.extend(self._complete_pending())
        return fired

    def next_wakeup(self) -> datetime | None:
        return self.heap.next_wakeup()

    def run(self, stop: threading.Event, *, catalog_poll_seconds: float = 1.0) -> None:
        watcher = threading.Thread(target=self._watch_catalog, args=(stop, catalog_poll_seconds),
                                   name="harrier-catalog", daemon=True)
        watcher.start()
        log.info("trigger loop started (replica %s)", self.context.replica)
        try:
            while not stop.is_set():
                self.step()
                wakeup = self.heap.next_wakeup()
                pause = self.max_sleep if wakeup is None else (
                    wakeup - self.clock()).total_seconds()
                if self._pending or self._backfills:
                    pause = 0.0
                stop.wait(min(self.max_sleep, max(0.0, pause)))
        finally:
            watcher.join(5)
            self.close()
            log.info("trigger loop stopped")

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    def _watch_catalog(self, stop: threading.Event, interval: float) -> None:
        while not stop.is_set():
            try:
                self.catalog.refresh()
            except StoreUnavailable as exc:
                log.warning("flow catalog not refreshed: %s", exc)
            stop.wait(interval)

    # -- keeping the heap in step with the catalog
    def _sync(self, now: datetime) -> None:
        if self.catalog.version == self._seen_version:
            return
        self._seen_version = self.catalog.version
        snapshot = self.catalog.schedules()
        for key in [k for k in self._armed if k not in snapshot]:
            self.heap.remove(key)
            self._backfills.pop(key, None)
            del self._armed[key]
            log.info("trigger %s removed: it stops firing", trigger_key_text(key))
        for key, entry in snapshot.items():
            schedule = schedule_of(entry.trigger)
            armed = self._armed.get(key)
            self._armed[key] = _Armed(entry, schedule)
            if armed is None:
                self.heap.add(key, schedule, after=now)
                self._to_recover.add(key)
                log.info("trigger %s armed (%s)", trigger_key_text(key), entry.trigger.cron)
            elif armed.schedule != schedule:
                self.heap.add(key, schedule, after=now)  # a new cron starts from now
            if armed is None or armed.entry.trigger.backfill != entry.trigger.backfill:
                cursor = backfill_cursor(self.context.redis, key, entry.trigger, now)
                if cursor is not None:
                    self._backfills[key] = cursor
                else:
                    self._backfills.pop(key, None)

    # -- recovery of ticks missed while no scheduler ran (or Redis was down)
    def _recover(self, now: datetime) -> None:
        keys = [k for k in self._to_recover if k in self._armed]
        try:
            fired = last_fired_many(self.context.redis, [trigger_key_text(k) for k in keys])
        except StoreUnavailable as exc:
            log.warning("cannot read last fired ticks, recovery postponed: %s", exc)
            return
        self._to_recover.clear()
        for key in keys:
            armed = self._armed[key]
            policy = armed.entry.trigger.recover_missed_schedules
            last = fired[trigger_key_text(key)]
            ticks = missed_ticks(armed.schedule, last, now, policy,
                                 limit=self.recover_limit + 1)
            if len(ticks) > self.recover_limit:
                ticks = self._latest_ticks(armed.schedule, now)
                log.warning("trigger %s missed more than %d ticks since %s; recovering only "
                            "the latest %d", trigger_key_text(key), self.recover_limit,
                            last, self.recover_limit)
            if ticks:
                log.info("trigger %s: recovering %d missed tick(s) (%s)",
                         trigger_key_text(key), len(ticks), policy)
            self._pending.extend((key, tick, f"recovered, {policy}") for tick in ticks)

    def _latest_ticks(self, schedule: CronSchedule, now: datetime) -> list[datetime]:
        ticks: list[datetime] = []
        moment = now + timedelta(microseconds=1)
        for _ in range(self.recover_limit):
            moment = previous_before(schedule, moment)
            ticks.append(moment)
        return ticks[::-1]

    def _backfill_work(self, now: datetime) -> list[tuple[TriggerKey, datetime, str]]:
        work: list[tuple[TriggerKey, datetime, str]] = []
        for key, cursor in list(self._backfills.items()):
            ticks = cursor.take(self._armed[key].schedule, self.backfill_batch)
            work.extend((key, tick, "backfill") for tick in ticks)
            if cursor.finished:
                cursor.mark_done(self.context.redis)
                del self._backfills[key]
                log.info("trigger %s: backfill done", trigger_key_text(key))
        return work

    # -- fires whose claimant died between its claim and its execution
    def _complete_pending(self) -> list[Fired]:
        try:
            fires = take_stale_pending_fires(self.context.redis, self.pending_grace,
                                             self.context.replica)
        except StoreUnavailable as exc:
            log.warning("cannot check pending fires: %s", exc)
            return []
        done = []
        by_text = {trigger_key_text(k): k for k in self._armed}
        for fire in fires:
            key = by_text.get(fire.trigger_key)
            if key is None:
                log.warning("tick %s of %s was claimed by a replica that died before creating "
                            "its execution, and the trigger is gone: dropped",
                            fire.tick.isoformat(), fire.trigger_key)
                try:
                    fire_done(self.context.redis, fire.trigger_key, fire.tick)
                except StoreUnavailable as exc:
                    log.warning("pending fire of %s not dropped: %s", fire.trigger_key, exc)
                continue
            execution_id = complete_fire(self.context, self._armed[key].entry, fire)
            done.append(Fired(key, fire.tick, execution_id))
        return done

    # -- firing
    def _fire_all(self, work: list[tuple[TriggerKey, datetime, str]]) -> list[Fired]:
        if self._pool is None or len(work) <= 1:
            results = [self._fire_one(item) for item in work]
        else:
            results = list(self._pool.map(self._fire_one, work))
        return [r for r in results if r is not None]

    def _fire_one(self, item: tuple[TriggerKey, datetime, str]) -> Fired | None:
        key, tick, why = item
        armed = self._armed.get(key)
        if armed is None:
            return None  # removed meanwhile
        trigger = armed.entry.trigger
        backfill = trigger.backfill if why == "backfill" else None
        text = trigger_key_text(key)
        try:
            if backfill is None and (text in self._disabled or stopped_after(
                    self.states, self.context.store, text, trigger)):
                # Passed, not missed: enabling the trigger again does not replay it.
                record_fired(self.context.redis, text, tick)
                return None
            late = self._now - tick
            if backfill is None and trigger.late_maximum_delay is not None and \
                    late > trigger.late_maximum_delay:
                log.warning("trigger %s: tick %s skipped, %s late (lateMaximumDelay %s)",
                            text, tick.isoformat(), late, trigger.late_maximum_delay)
                record_fired(self.context.redis, text, tick)
                return None
        except StoreUnavailable as exc:
            log.warning("could not record skipped tick of %s: %s", text, exc)
            return None
        try:
            execution_id = fire_tick(
                self.context, armed.entry, tick, why=why, record=backfill is None,
                inputs={**armed.entry.trigger.inputs, **backfill.inputs} if backfill else None,
                labels=_labels(backfill.labels) if backfill else None)
        except StoreUnavailable as exc:
            log.warning("tick %s of %s not fired, will recover once Redis answers: %s",
                        tick.isoformat(), trigger_key_text(key), exc)
            self._to_recover.add(key)
            return None
        if execution_id is not None and trigger.stop_after:
            try:
                self.states.set_last_execution(text, execution_id)
            except StoreUnavailable as exc:
                log.warning("trigger %s: stopAfter cannot follow execution %s: %s", text,
                            execution_id, exc)
        return Fired(key, tick, execution_id)


def _labels(raw: dict[str, str] | list[dict[str, str]]) -> dict[str, str]:
    if isinstance(raw, dict):
        return dict(raw)
    return {str(item["key"]): str(item["value"]) for item in raw
            if "key" in item and "value" in item}
