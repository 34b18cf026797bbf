"""A ForEach (or, with --loop, Kestra 2.0's Loop: each iteration an execution
of its own) over N values of a `true` shell task (concurrencyLimit: 0),
distributed on one worker of 2 prefork processes, beside the same N raw
Celery tasks running `true` in a chord, on the same Redis in the same run:
median wall time of repeated runs, per-value cost and peak worker RSS.

    .venv/bin/python bench/for_each.py [--sizes 100,1000,10000] [--repeats 5] [--loop]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from celery import chord, group  # noqa: E402

from bench.distributed import start_raw_worker  # noqa: E402
from bench.scale import children, largest_message, peak_rss_mb, run_harrier  # noqa: E402
from tests.fixtures.redis_server import RedisServer  # noqa: E402
from tests.fixtures.workers import make_cluster  # noqa: E402

KIND = "ForEach"


def for_each_flow(size: int) -> str:
    values = ", ".join(str(i) for i in range(size))
    return ("id: foreach\nnamespace: bench\ntasks:\n"
            f"  - id: each\n    type: io.kestra.plugin.core.flow.{KIND}\n"
            f"    values: [{values}]\n    concurrencyLimit: 0\n    tasks:\n"
            "      - id: t\n        type: io.kestra.plugin.scripts.shell.Commands\n"
            "        commands: ['true']\n")


def repeats_for(size: int, repeats: int) -> int:
    return max(1, repeats if size <= 100 else repeats // 2 if size <= 1000 else 1)


def harrier(url: str, sizes: list[int], repeats: int, work: Path) -> dict[int, dict]:
    cluster = make_cluster(url, url, work, HARRIER_LOG_LEVEL="WARNING")
    from harrier.common.celery_app import app

    results = {}
    try:
        worker = cluster.start_worker("bench", concurrency=2)
        run_harrier(cluster.store, app, for_each_flow(10), 60)  # warm up
        for size in sizes:
            samples = []
            with largest_message() as messages:
                for _ in range(repeats_for(size, repeats)):
                    samples.append(run_harrier(cluster.store, app, for_each_flow(size), 7200))
            results[size] = {"s": statistics.median(samples), "largest": max(messages),
                             "rss": peak_rss_mb(children(worker.process.pid))}
            print(f"  harrier {KIND} {size:>6}: {results[size]['s']:8.2f} s", flush=True)
    finally:
        cluster.stop_all()
    return results


def raw(url: str, sizes: list[int], repeats: int, work: Path) -> dict[int, dict]:
    import os

    os.environ["BENCH_REDIS_URL"] = url
    worker = start_raw_worker(url, work, 2)
    from bench.raw_celery_app import done, true

    results = {}
    try:
        true.delay().get(timeout=60)
        for size in sizes:
            samples = []
            for _ in range(repeats_for(size, repeats)):
                started = time.perf_counter()
                chord(group(true.si() for _ in range(size)), done.si()).apply_async() \
                    .get(timeout=7200)
                samples.append(time.perf_counter() - started)
            results[size] = {"s": statistics.median(samples),
                             "rss": peak_rss_mb(children(worker.pid))}
            print(f"  raw Celery chord {size:>6}: {results[size]['s']:8.2f} s", flush=True)
    finally:
        worker.terminate()
        worker.wait(30)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="100,1000,10000")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--loop", action="store_true",
                        help="Kestra 2.0's Loop (an execution per iteration) instead of ForEach")
    args = parser.parse_args()
    global KIND
    KIND = "Loop" if args.loop else "ForEach"
    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        server = RedisServer(work)
        server.start()
        try:
            baseline = raw(server.url, sizes, args.repeats, work)
            server.client().flushall()
            ours = harrier(server.url, sizes, args.repeats, work)
        finally:
            server.stop()
    print(f"\n{'values':>7} | {KIND + ' s':>9}{'ms/value':>9}{'msg B':>7}{'RSS MB':>8} | "
          f"{'chord s':>8}{'ms/task':>8}{'RSS MB':>8} | {'ratio':>6}")
    for size in sizes:
        h, r = ours[size], baseline[size]
        print(f"{size:>7} | {h['s']:>9.2f}{h['s'] * 1000 / size:>9.2f}{h['largest']:>7.0f}"
              f"{h['rss']:>8.0f} | {r['s']:>8.2f}{r['s'] * 1000 / size:>8.2f}{r['rss']:>8.0f} | "
              f"{h['s'] / r['s']:>5.2f}x")


if __name__ == "__main__":
    main()
