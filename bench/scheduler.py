"""Benchmark the scheduler's trigger loop with 10,000 flows on a real Redis
(its own redis-server on a free port): catalog load, the cost of evaluating
a tick as the number of not-due flows grows, and the lag from a tick to its
execution being enqueued (p50, p99), steady and in a burst.

    .venv/bin/python bench/scheduler.py [--flows 10000] [--burst 1000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import harrier.scheduler.triggers as trigger_loop
from harrier.common.celery_app import configure_app
from harrier.common.redis_store import RedisStore
from harrier.common.settings import Settings
from harrier.scheduler.firing import FireContext, fire_tick
from harrier.scheduler.flow_catalog import FlowCatalog
from harrier.scheduler.triggers import TriggerLoop
from tests.fixtures.redis_server import start_redis_server

NOT_DUE = "0 0 0 1 1 *"  # once a year, on January 1st: never due during the run


def flow_text(index: int, cron: str, namespace: str) -> str:
    return f"""id: f{index:05d}
namespace: bench.{namespace}
tasks:
  - id: say
    type: io.kestra.plugin.core.log.Log
    message: "{{{{ trigger.date }}}}"
triggers:
  - id: sched
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "{cron}"
    withSeconds: true
"""


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else 0.0


class LagRecorder:
    """Wraps fire_tick to note when each execution was enqueued."""

    def __init__(self) -> None:
        self.lags: list[float] = []

    def __call__(self, context: FireContext, entry: object, tick: datetime,
                 **kwargs: object) -> str | None:
        execution_id = fire_tick(context, entry, tick, **kwargs)  # type: ignore[arg-type]
        if execution_id is not None:
            self.lags.append((datetime.now(UTC) - tick).total_seconds())
        return execution_id


def build(workdir: Path, crons: list[str], context: FireContext,
          name: str) -> tuple[FlowCatalog, float]:
    flows = workdir / name
    flows.mkdir()
    for index, cron in enumerate(crons):
        (flows / f"f{index:05d}.yaml").write_text(flow_text(index, cron, name))
    catalog = FlowCatalog(flows, context.store)
    started = time.perf_counter()
    catalog.refresh()
    loaded = time.perf_counter() - started
    return catalog, loaded


def idle_step_cost(loop: TriggerLoop, samples: int = 2000) -> float:
    """Median seconds of one step() when nothing is due (what most wake-ups are)."""
    loop.step()
    wakeup = loop.next_wakeup()
    assert wakeup is not None
    moment = wakeup - timedelta(milliseconds=500)
    costs = []
    for _ in range(samples):
        started = time.perf_counter()
        loop.step(moment)
        costs.append(time.perf_counter() - started)
    return statistics.median(costs)


def run_for(loop: TriggerLoop, seconds: float) -> list[float]:
    """Drive the loop like `harrier scheduler` does; return step durations that fired."""
    deadline = time.monotonic() + seconds
    busy: list[float] = []
    while time.monotonic() < deadline:
        started = time.perf_counter()
        fired = loop.step()
        if fired:
            busy.append((time.perf_counter() - started) / len(fired))
        wakeup = loop.next_wakeup()
        pause = 1.0 if wakeup is None else (wakeup - datetime.now(UTC)).total_seconds()
        time.sleep(min(1.0, max(0.0, pause)))
    return busy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--flows", type=int, default=10_000)
    parser.add_argument("--due", type=int, default=10, help="flows due every second")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--burst", type=int, default=1000,
                        help="flows due at the same second in the burst run")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="harrier-bench-scheduler-"))
    server = start_redis_server(workdir)
    try:
        settings = Settings(broker_url=server.url)
        store = RedisStore.from_settings(settings)
        context = FireContext(store, configure_app(settings), store.redis, "bench")
        recorder = LagRecorder()
        trigger_loop.fire_tick = recorder  # type: ignore[assignment]

        print(f"redis-server {server.url}; {args.flows} flows, {args.due} due every second")
        small, small_load = build(workdir, ["* * * * * *"] * args.due, context, "small")
        big, big_load = build(workdir, ["* * * * * *"] * args.due
                              + [NOT_DUE] * (args.flows - args.due), context, "big")
        print(f"catalog load (parse + push to the store): {args.due} flows {small_load:.2f} s,"
              f" {args.flows} flows {big_load:.2f} s "
              f"({big_load / args.flows * 1000:.2f} ms/flow)")
        started = time.perf_counter()
        store.list_flows()
        print(f"store poll (list_flows) with {args.flows + args.due} flows: "
              f"{time.perf_counter() - started:.2f} s (runs in the catalog thread)")

        idle_small = idle_step_cost(TriggerLoop(small, context))
        idle_big = idle_step_cost(TriggerLoop(big, context))
        print(f"evaluate a tick with nothing due: {args.due} flows {idle_small * 1e6:.1f} us, "
              f"{args.flows} flows {idle_big * 1e6:.1f} us "
              f"(ratio {idle_big / idle_small:.2f})")

        for catalog in (small, big):
            loop = TriggerLoop(catalog, context, fire_threads=4)
            recorder.lags.clear()
            per_fire = run_for(loop, args.seconds)
            print(f"steady, {len(loop)} flows ({args.due} due/s) over {args.seconds:.0f} s: "
                  f"{len(recorder.lags)} executions; step cost per fired tick "
                  f"p50 {statistics.median(per_fire) * 1000:.2f} ms; tick->enqueued lag "
                  f"p50 {percentile(recorder.lags, 0.5) * 1000:.1f} ms, "
                  f"p99 {percentile(recorder.lags, 0.99) * 1000:.1f} ms")
            loop.close()

        # A fresh Redis, so the burst's catalog does not parse the 10,000 flows above;
        # and a tick far enough ahead that loading the burst's own flows is done by then.
        store.redis.flushdb()
        lead = 3 + int(args.burst * 0.004)
        next_second = (datetime.now(UTC) + timedelta(seconds=lead)).second
        burst_catalog, _ = build(workdir, [f"{next_second} * * * * *"] * args.burst, context,
                                 "burst")
        burst = TriggerLoop(burst_catalog, context, fire_threads=4)
        recorder.lags.clear()
        run_for(burst, lead + 4.0)
        burst.close()
        print(f"burst, {args.burst} flows due at the same second: {len(recorder.lags)} "
              f"executions; lag p50 {percentile(recorder.lags, 0.5) * 1000:.0f} ms, "
              f"p99 {percentile(recorder.lags, 0.99) * 1000:.0f} ms, "
              f"last {max(recorder.lags, default=0) * 1000:.0f} ms "
              f"({args.burst / max(max(recorder.lags, default=1), 1e-9):.0f} executions/s)")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
