"""A min-heap of next fire times, so a scheduler loop over thousands of
schedules touches only those that are due: a tick costs O(k log n) for k due
schedules, whatever n is. Not thread-safe; one loop owns it."""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Hashable
from dataclasses import dataclass
from datetime import datetime

from harrier.common.cron import CronSchedule, next_after


@dataclass
class _Entry:
    schedule: CronSchedule
    generation: int  # bumps on every add/remove; stale heap items carry an older one


class ScheduleHeap:
    """Keys (e.g. (namespace, flow_id, trigger_id)) with their next tick.

    Removal and re-adding are lazy: the heap keeps stale items and skips them
    when they surface, and compacts itself when they outnumber live ones.
    """

    def __init__(self) -> None:
        # (tick, sequence, key, generation); sequence breaks ties so keys need not compare
        self._heap: list[tuple[datetime, int, Hashable, int]] = []
        self._entries: dict[Hashable, _Entry] = {}
        self._sequence = itertools.count()
        self._generations = itertools.count(1)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def add(self, key: Hashable, schedule: CronSchedule, after: datetime) -> datetime:
        """Schedule `key` at its first tick strictly after `after`; replaces any
        previous schedule of the same key. Returns that tick."""
        tick = next_after(schedule, after)
        generation = next(self._generations)
        self._entries[key] = _Entry(schedule, generation)
        heapq.heappush(self._heap, (tick, next(self._sequence), key, generation))
        self._compact_if_sparse()
        return tick

    def remove(self, key: Hashable) -> bool:
        """Forget `key`; True if it was scheduled."""
        removed = self._entries.pop(key, None) is not None
        self._compact_if_sparse()
        return removed

    def schedule_of(self, key: Hashable) -> CronSchedule | None:
        entry = self._entries.get(key)
        return entry.schedule if entry is not None else None

    def next_wakeup(self) -> datetime | None:
        """The earliest pending tick, or None when nothing is scheduled."""
        self._drop_stale_top()
        return self._heap[0][0] if self._heap else None

    def pop_due(self, now: datetime) -> list[tuple[Hashable, datetime]]:
        """Every (key, tick) with tick <= now, oldest first, each popped key
        re-armed at its next tick after the popped one. Afterwards
        next_wakeup() > now. A key that fell behind yields each tick it missed
        since it was armed: add it with `after=now` (and use missed_ticks for
        recovery) rather than with an old time, or it will replay them all."""
        due: list[tuple[Hashable, datetime]] = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            tick, _, key, generation = heapq.heappop(heap)
            entry = self._entries.get(key)
            if entry is None or entry.generation != generation:
                continue
            due.append((key, tick))
            heapq.heappush(heap, (next_after(entry.schedule, tick), next(self._sequence), key,
                                  generation))
        return due

    def _drop_stale_top(self) -> None:
        heap = self._heap
        while heap:
            _, _, key, generation = heap[0]
            entry = self._entries.get(key)
            if entry is not None and entry.generation == generation:
                return
            heapq.heappop(heap)

    def _compact_if_sparse(self) -> None:
        if len(self._heap) > 64 and len(self._heap) > 2 * len(self._entries):
            self._heap = [item for item in self._heap
                          if (entry := self._entries.get(item[2])) is not None
                          and entry.generation == item[3]]
            heapq.heapify(self._heap)
