"""Distributed-mode overhead: Harrier against raw Celery on the same Redis with
the same number of prefork worker processes, in one run.

Shapes: a chain of 10 tasks (raw no-ops, raw `true`, Harrier `true` tasks), a
1 -> 10 -> 1 fan-out (raw chord, Harrier Parallel), and a burst of N one-task
runs (throughput). Both worker pools run side by side and every measurement
alternates raw and Harrier, so a load that drifts during the run (a shared
machine) weighs on both alike. Prints medians and the ratio Harrier / raw.

    .venv/bin/python bench/distributed.py [--runs 15] [--burst 2000] [--workers 2]
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from celery import chain, chord, group  # noqa: E402

from bench.shapes import CHAIN, FANOUT, ONE  # noqa: E402
from harrier.common.flow import parse_flow  # noqa: E402
from harrier.common.state import State  # noqa: E402
from tests.fixtures.redis_server import RedisServer  # noqa: E402
from tests.fixtures.workers import make_cluster  # noqa: E402

BURST_ROUNDS = 4


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def start_raw_worker(url: str, workdir: Path, workers: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "BENCH_REDIS_URL": url, "PYTHONPATH": str(ROOT)}
    log = (workdir / "raw.log").open("wb")
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "bench.raw_celery_app", "worker",
         "-c", str(workers), "--pool", "prefork", "-l", "WARNING", "--without-gossip",
         "--without-mingle", "-O", "fair"], env=env, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True)


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


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
        os.environ["BENCH_REDIS_URL"] = server.url
        from bench.raw_celery_app import done, noop, true

        raw_worker = start_raw_worker(server.url, workdir, args.workers)
        cluster = make_cluster(server.url, server.url, workdir, HARRIER_LOG_LEVEL="WARNING")
        from harrier.common.celery_app import app
        from harrier.scheduler.executions import create_execution, start_execution

        store = cluster.store
        flows = {text: parse_flow(text, "bench") for text in (CHAIN, FANOUT, ONE)}

        def harrier_run(text: str) -> None:
            execution = create_execution(store, flows[text], {})
            start_execution(app, flows[text], execution, store=store)
            assert store.wait_terminal(execution.id, 120).state.current == State.SUCCESS

        def raw_burst(count: int) -> None:
            results = [true.delay() for _ in range(count)]
            for result in results:
                result.get(timeout=300)

        def harrier_burst(count: int) -> None:
            ids = []
            for _ in range(count):
                execution = create_execution(store, flows[ONE], {})
                start_execution(app, flows[ONE], execution, store=store)
                ids.append(execution.id)
            for execution_id in ids:
                assert store.wait_terminal(execution_id, 600).state.current == State.SUCCESS

        shapes: dict[str, tuple[Callable[[], Any], Callable[[], Any]]] = {
            "chain10_true": (lambda: chain(*(true.si() for _ in range(10))).apply_async()
                             .get(timeout=60), lambda: harrier_run(CHAIN)),
            "fanout": (lambda: chain(true.si(), chord(group(true.si() for _ in range(10)),
                                                      done.si()), true.si()).apply_async()
                       .get(timeout=60), lambda: harrier_run(FANOUT)),
        }
        try:
            print(f"redis-server on {server.url}; {args.workers} prefork processes each; "
                  f"median of {args.runs} alternating runs; burst of {args.burst}",
                  flush=True)
            noop.delay().get(timeout=60)  # the raw worker is ready
            cluster.start_worker("bench", concurrency=args.workers)
            noop_chain = [timed(lambda: chain(*(noop.si() for _ in range(10))).apply_async()
                                .get(timeout=60)) for _ in range(args.runs)]
            raw: dict[str, list[float]] = {name: [] for name in shapes}
            ours: dict[str, list[float]] = {name: [] for name in shapes}
            for name, (raw_shape, harrier_shape) in shapes.items():
                raw_shape(), harrier_shape()  # warm up
                for _ in range(args.runs):
                    raw[name].append(timed(raw_shape))
                    ours[name].append(timed(harrier_shape))
            per_round = args.burst // BURST_ROUNDS
            raw_burst_s = ours_burst_s = 0.0
            for _ in range(BURST_ROUNDS):
                raw_burst_s += timed(lambda: raw_burst(per_round))
                ours_burst_s += timed(lambda: harrier_burst(per_round))
        finally:
            cluster.stop_all()
            raw_worker.terminate()
            raw_worker.wait(30)
            gc.collect()  # raw Celery's results unsubscribe while Redis still answers
            server.stop()
    total = per_round * BURST_ROUNDS
    print(f"\n{'shape':<28}{'raw Celery':>12}{'Harrier':>12}{'Harrier/raw':>13}")
    print(f"{'chain of 10 no-ops':<28}{median_ms(noop_chain):>10.1f}ms{'':>12}")
    for key, label in (("chain10_true", "chain of 10 `true`"),
                       ("fanout", "fan-out 1 -> 10 -> 1")):
        mine, base = median_ms(ours[key]), median_ms(raw[key])
        print(f"{label:<28}{base:>10.1f}ms{mine:>10.1f}ms{mine / base:>12.2f}x")
    raw_rate, our_rate = total / raw_burst_s, total / ours_burst_s
    print(f"{'burst throughput (tasks/s)':<28}{raw_rate:>12.0f}{our_rate:>12.0f}"
          f"{our_rate / raw_rate:>12.0%}")


if __name__ == "__main__":
    main()
