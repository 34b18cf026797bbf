"""Cost of one scheduler tick (pop_due + re-arm) over 10,000 cron schedules in a
ScheduleHeap, against a naive scan of every schedule, when none, a few and all
schedules are due. Run: .venv/bin/python -m bench.scheduler_ticks [--quick]"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from harrier.common.cron import CronSchedule, next_after, parse_cron
from harrier.scheduler.schedule_heap import ScheduleHeap

T0 = datetime(2024, 3, 1, tzinfo=UTC)
_PARSED: dict[tuple[str, str], CronSchedule] = {}


def schedule(expression: str, timezone: str = "UTC") -> CronSchedule:
    key = (expression, timezone)
    if key not in _PARSED:
        _PARSED[key] = parse_cron(expression, timezone=timezone)
    return _PARSED[key]


def mixed_schedules(count: int, seed: int = 7) -> list[CronSchedule]:
    """1% every minute, 29% hourly at a random minute, 70% daily at a random time;
    a fifth of them in Europe/Paris, the rest in UTC."""
    rng = random.Random(seed)
    result = []
    for _ in range(count):
        zone = "Europe/Paris" if rng.random() < 0.2 else "UTC"
        roll = rng.random()
        if roll < 0.01:
            expression = "* * * * *"
        elif roll < 0.30:
            expression = f"{rng.randrange(60)} * * * *"
        else:
            expression = f"{rng.randrange(60)} {rng.randrange(24)} * * *"
        result.append(schedule(expression, zone))
    return result


class NaiveScan:
    """The baseline: every tick looks at every schedule."""

    def __init__(self) -> None:
        self.entries: list[list[object]] = []

    def add(self, key: Hashable, cron: CronSchedule, after: datetime) -> None:
        self.entries.append([key, cron, next_after(cron, after)])

    def pop_due(self, now: datetime) -> list[tuple[Hashable, datetime]]:
        due: list[tuple[Hashable, datetime]] = []
        for entry in self.entries:
            tick = entry[2]
            assert isinstance(tick, datetime)
            if tick <= now:
                cron = entry[1]
                assert isinstance(cron, CronSchedule)
                due.append((entry[0], tick))
                entry[2] = next_after(cron, tick)
        return due


@dataclass
class Result:
    label: str
    n: int
    due_mean: float
    heap_us: list[float]
    naive_us: list[float]


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run(label: str, schedules: list[CronSchedule], wakeups: list[datetime],
        with_naive: bool = True) -> Result:
    heap, naive = ScheduleHeap(), NaiveScan()
    for index, cron in enumerate(schedules):
        heap.add(index, cron, T0)
        if with_naive:
            naive.add(index, cron, T0)
    heap_us: list[float] = []
    naive_us: list[float] = []
    due_counts: list[int] = []
    for now in wakeups:
        # Both structures see the same wakeups; the naive one is timed second so
        # it does not benefit from a warmer cache of next_after results.
        started = time.perf_counter_ns()
        due = heap.pop_due(now)
        heap_us.append((time.perf_counter_ns() - started) / 1000)
        due_counts.append(len(due))
        if with_naive:
            started = time.perf_counter_ns()
            naive_due = naive.pop_due(now)
            naive_us.append((time.perf_counter_ns() - started) / 1000)
            assert sorted(naive_due, key=repr) == sorted(due, key=repr), "heap and scan disagree"
    return Result(label, len(schedules), statistics.fmean(due_counts), heap_us, naive_us)


def seconds_between(start: datetime, count: int, step: timedelta,
                    keep: Callable[[datetime], bool]) -> list[datetime]:
    out: list[datetime] = []
    now = start
    while len(out) < count:
        now += step
        if keep(now):
            out.append(now)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer samples")
    args = parser.parse_args()
    scale = 4 if args.quick else 1
    n = 10_000
    results: list[Result] = []
    mixed = mixed_schedules(n)

    # A loop waking often between minute boundaries: nothing is due.
    idle = seconds_between(T0, 2000 // scale, timedelta(milliseconds=25),
                           lambda t: t < T0 + timedelta(seconds=59))
    results.append(run("between minutes (none due)", mixed, idle))
    # Minute boundaries: ~100 every-minute + ~50 hourly + ~5 daily schedules due.
    minutes = [T0 + timedelta(minutes=m) for m in range(1, 1 + 240 // scale)]
    results.append(run("minute boundary (few due)", mixed, minutes))
    # Everyone due at once: 10,000 every-minute schedules.
    every_minute = [schedule("* * * * *")] * n
    results.append(run("all due (10,000 every minute)", every_minute,
                       [T0 + timedelta(minutes=m) for m in range(1, 1 + 20 // scale)]))
    # Per-tick cost against the number of schedules that are NOT due.
    for size in (1_000, 10_000, 50_000):
        results.append(run("minute boundary, heap only", mixed_schedules(size), minutes[:60],
                           with_naive=False))

    header = (f"{'scenario':34} {'n':>7} {'due/tick':>9} {'heap p50':>10} {'heap p99':>10} "
              f"{'scan p50':>10} {'scan p99':>10} {'scan/heap':>10}")
    print("times in microseconds per tick (pop_due + re-arm of every due schedule)")
    print(header)
    print("-" * len(header))
    for r in results:
        heap50, heap99 = percentile(r.heap_us, 0.5), percentile(r.heap_us, 0.99)
        if r.naive_us:
            scan50, scan99 = percentile(r.naive_us, 0.5), percentile(r.naive_us, 0.99)
            naive = f"{scan50:10.1f} {scan99:10.1f} {scan50 / heap50:9.1f}x"
        else:
            naive = f"{'-':>10} {'-':>10} {'-':>10}"
        print(f"{r.label:34} {r.n:7d} {r.due_mean:9.1f} {heap50:10.1f} {heap99:10.1f} {naive}")
    per_due = [percentile(r.heap_us, 0.5) / r.due_mean for r in results if r.due_mean >= 1]
    print(f"\nheap cost per due schedule: {min(per_due):.1f}-{max(per_due):.1f} us "
          "(dominated by next_after, i.e. croniter)")


if __name__ == "__main__":
    main()
