"""Distributed-mode overhead: Harrier against raw Celery on the same Redis with
the same number of prefork worker processes, in one run.

Shapes: a chain of 10 tasks (raw no-ops, raw `true`, Harrier `true` tasks), a
1 -> 10 -> 1 fan-out (raw chord, Harrier Parallel), and a burst of N one-task
runs (throughput). Prints medians and the ratio Harrier / raw Celery.

    .venv/bin/python bench/distributed.py [--runs 15] [--burst 2000] [--workers 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from celery import chain, chord, group  # noqa: E402

from bench.shapes import CHAIN, FANOUT, ONE  # noqa: E402
from harrier.common.flow import parse_flow  # noqa: E402
from harrier.common.state import State  # noqa: E402
from tests.fixtures.redis_server import RedisServer  # noqa: E402
from tests.fixtures.workers import make_cluster  # noqa: E402


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def raw_celery(url: str, workdir: Path, runs: int, burst: int, workers: int) -> dict:
    env = {**os.environ, "BENCH_REDIS_URL": url, "PYTHONPATH": str(ROOT)}
    log = (workdir / "raw.log").open("wb")
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "bench.raw_celery_app", "worker",
         "-c", str(workers), "--pool", "prefork", "-l", "WARNING", "--without-gossip",
         "--without-mingle", "-O", "fair"], env=env, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True)
    os.environ["BENCH_REDIS_URL"] = url
    from bench.raw_celery_app import done, noop, true

    try:
        noop.delay().get(timeout=60)  # ready
        result: dict[str, float] = {}
        for name, make in (("chain10_noop", lambda: chain(*(noop.si() for _ in range(10)))),
                           ("chain10_true", lambda: chain(*(true.si() for _ in range(10)))),
                           ("fanout", lambda: chain(true.si(), chord(
                               group(true.si() for _ in range(10)), done.si()), true.si()))):
            samples = []
            for _ in range(runs + 2):
                started = time.perf_counter()
                make().apply_async().get(timeout=60)
                samples.append(time.perf_counter() - started)
            result[name] = median_ms(samples[2:])
        started = time.perf_counter()
        results = [true.delay() for _ in range(burst)]
        for r in results:
            r.get(timeout=300)
        result["burst_per_s"] = burst / (time.perf_counter() - started)
        return result
    finally:
        worker.terminate()
        worker.wait(30)


def harrier(url: str, workdir: Path, runs: int, burst: int, workers: int) -> dict:
    cluster = make_cluster(url, url, workdir, HARRIER_LOG_LEVEL="WARNING")
    from harrier.common.celery_app import app
    from harrier.scheduler.executions import create_execution, start_execution

    store = cluster.store

    def run(text: str) -> float:
        flow = parse_flow(text, "bench")
        started = time.perf_counter()
        execution = create_execution(store, flow, {})
        start_execution(app, flow, execution, store=store)
        done = store.wait_terminal(execution.id, 120)
        assert done.state.current == State.SUCCESS, done.state.current
        return time.perf_counter() - started

    try:
        cluster.start_worker("bench", concurrency=workers)
        result: dict[str, float] = {}
        for name, text in (("chain10_true", CHAIN), ("fanout", FANOUT)):
            samples = [run(text) for _ in range(runs + 2)]
            result[name] = median_ms(samples[2:])
        flow = parse_flow(ONE, "bench")
        started = time.perf_counter()
        ids = []
        for _ in range(burst):
            execution = create_execution(store, flow, {})
            start_execution(app, flow, execution, store=store)
            ids.append(execution.id)
        for execution_id in ids:
            assert store.wait_terminal(execution_id, 600).state.current == State.SUCCESS
        result["burst_per_s"] = burst / (time.perf_counter() - started)
        return result
    finally:
        cluster.stop_all()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--burst", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        server = RedisServer(workdir)
        server.start()
        try:
            print(f"redis-server on {server.url}; {args.workers} prefork processes; "
                  f"median of {args.runs} runs; burst of {args.burst}", flush=True)
            raw = raw_celery(server.url, workdir, args.runs, args.burst, args.workers)
            server.client().flushall()
            ours = harrier(server.url, workdir, args.runs, args.burst, args.workers)
        finally:
            server.stop()
    print(f"\n{'shape':<28}{'raw Celery':>12}{'Harrier':>12}{'Harrier/raw':>13}")
    print(f"{'chain of 10 no-ops':<28}{raw['chain10_noop']:>10.1f}ms{'':>12}")
    for key, label in (("chain10_true", "chain of 10 `true`"),
                       ("fanout", "fan-out 1 -> 10 -> 1")):
        print(f"{label:<28}{raw[key]:>10.1f}ms{ours[key]:>10.1f}ms"
              f"{ours[key] / raw[key]:>12.2f}x")
    print(f"{'burst throughput (tasks/s)':<28}{raw['burst_per_s']:>12.0f}"
          f"{ours['burst_per_s']:>12.0f}{ours['burst_per_s'] / raw['burst_per_s']:>12.0%}")


if __name__ == "__main__":
    main()
