"""Orchestration cost as an execution grows: per-task cost, largest broker
message and peak memory for flows of 10, 100, 1,000 and 10,000 tasks, as a
chain and as one wide Parallel, embedded and distributed, beside raw Celery
(a chain, a chord) on the same Redis in the same run.

The tasks are Log tasks (no subprocess), so what is measured is the
orchestration itself. Raw Celery's chain carries every remaining step in each
message (quadratic in bytes): it is run up to --raw-chain-max tasks.

    .venv/bin/python bench/scale.py [--sizes 10,100,1000,10000] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from celery import chain, chord, group  # noqa: E402
from celery.signals import before_task_publish  # noqa: E402

from harrier.common.flow import parse_flow  # noqa: E402
from harrier.common.settings import Settings  # noqa: E402
from harrier.common.state import State  # noqa: E402
from harrier.scheduler.executions import create_execution, start_execution  # noqa: E402
from harrier.worker.embedded import EmbeddedRuntime  # noqa: E402
from tests.fixtures.redis_server import RedisServer  # noqa: E402
from tests.fixtures.workers import make_cluster  # noqa: E402

LOG = "type: io.kestra.plugin.core.log.Log, message: hi"


def chain_flow(size: int) -> str:
    return f"id: chain{size}\nnamespace: scale\ntasks:\n" + "".join(
        f"  - {{id: t{i}, {LOG}}}\n" for i in range(size))


def wide_flow(size: int) -> str:
    return (f"id: wide{size}\nnamespace: scale\ntasks:\n"
            "  - id: fan\n    type: io.kestra.plugin.core.flow.Parallel\n    tasks:\n"
            + "".join(f"      - {{id: b{i}, {LOG}}}\n" for i in range(size)))


SHAPES: dict[str, Callable[[int], str]] = {"chain": chain_flow, "parallel": wide_flow}


@contextmanager
def largest_message() -> Iterator[list[int]]:
    """Sizes of the messages this process publishes (Celery's signal)."""
    sizes: list[int] = [0]

    def record(body: Any = None, **_: Any) -> None:
        sizes.append(len(json.dumps(body)))
    before_task_publish.connect(record, weak=False)
    try:
        yield sizes
    finally:
        before_task_publish.disconnect(record)


def peak_rss_mb(pids: list[int]) -> float:
    peak = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]))
        except OSError:
            continue
    return peak / 1024


def children(pid: int) -> list[int]:
    found = [pid]
    try:
        for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
            found.extend(children(int(child)))
    except OSError:
        pass
    return found


def run_harrier(store: Any, app: Any, text: str, timeout: float) -> float:
    flow = parse_flow(text, "bench")
    started = time.perf_counter()
    execution = create_execution(store, flow, {})
    start_execution(app, flow, execution, store=store)
    done = store.wait_terminal(execution.id, timeout)
    assert done.state.current == State.SUCCESS, done.state.current
    return time.perf_counter() - started


def embedded(sizes: list[int], work: Path) -> dict[tuple[str, int], dict[str, float]]:
    results = {}
    for shape, make in SHAPES.items():
        for size in sizes:
            # A fresh runtime per flow: the in-memory store holds every run it made.
            with EmbeddedRuntime(Settings(work_root=work)) as runtime, \
                    largest_message() as messages:
                run_harrier(runtime.store, runtime.app, make(10), 60)  # warm up
                elapsed = run_harrier(runtime.store, runtime.app, make(size), 3600)
            results[(shape, size)] = {
                "ms_per_task": elapsed * 1000 / size, "largest": max(messages),
                "rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
            print(f"  embedded {shape:<8} {size:>6}: {elapsed * 1000 / size:7.2f} ms/task",
                  flush=True)
    return results


def distributed(url: str, sizes: list[int], workers: int, work: Path
                ) -> dict[tuple[str, int], dict[str, float]]:
    cluster = make_cluster(url, url, work, HARRIER_LOG_LEVEL="WARNING")
    from harrier.common.celery_app import app

    results = {}
    try:
        worker = cluster.start_worker("scale", concurrency=workers)
        run_harrier(cluster.store, app, chain_flow(10), 60)  # warm up
        for shape, make in SHAPES.items():
            for size in sizes:
                with largest_message() as messages:
                    elapsed = run_harrier(cluster.store, app, make(size), 3600)
                results[(shape, size)] = {
                    "ms_per_task": elapsed * 1000 / size, "largest": max(messages),
                    "rss": peak_rss_mb(children(worker.process.pid))}
                print(f"  distributed {shape:<8} {size:>6}: {elapsed * 1000 / size:7.2f} "
                      "ms/task", flush=True)
    finally:
        cluster.stop_all()
    return results


def raw_celery(url: str, sizes: list[int], workers: int, work: Path, chain_max: int
               ) -> dict[tuple[str, int], dict[str, float]]:
    env = {**os.environ, "BENCH_REDIS_URL": url, "PYTHONPATH": str(ROOT)}
    log = (work / "raw.log").open("wb")
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "bench.raw_celery_app", "worker",
         "-c", str(workers), "--pool", "prefork", "-l", "WARNING", "--without-gossip",
         "--without-mingle", "-O", "fair"], env=env, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True)
    os.environ["BENCH_REDIS_URL"] = url
    from bench.raw_celery_app import done, noop

    shapes = {"chain": lambda n: chain(*(noop.si() for _ in range(n))),
              "parallel": lambda n: chord(group(noop.si() for _ in range(n)), done.si())}
    results = {}
    try:
        noop.delay().get(timeout=60)
        for shape, make in shapes.items():
            for size in sizes:
                if shape == "chain" and size > chain_max:
                    continue
                with largest_message() as messages:
                    started = time.perf_counter()
                    make(size).apply_async().get(timeout=3600)
                    elapsed = time.perf_counter() - started
                results[(shape, size)] = {
                    "ms_per_task": elapsed * 1000 / size, "largest": max(messages),
                    "rss": peak_rss_mb(children(worker.pid))}
                print(f"  raw celery {shape:<8} {size:>6}: {elapsed * 1000 / size:7.2f} ms/task",
                      flush=True)
    finally:
        worker.terminate()
        worker.wait(30)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="10,100,1000,10000")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--raw-chain-max", type=int, default=1000)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        server = RedisServer(work)
        server.start()
        try:
            print(f"redis-server on {server.url}; {args.workers} prefork processes", flush=True)
            raw = raw_celery(server.url, sizes, args.workers, work, args.raw_chain_max)
            server.client().flushall()
            dist = distributed(server.url, sizes, args.workers, work)
            emb = embedded(sizes, work)
        finally:
            server.stop()
    print(f"\n{'shape':<9}{'tasks':>7} | {'embedded ms/task':>16}{'msg B':>7}{'RSS MB':>8} | "
          f"{'distributed':>11}{'msg B':>7}{'RSS MB':>8} | {'raw Celery':>10}{'msg B':>10}"
          f"{'RSS MB':>8}")
    for shape in SHAPES:
        for size in sizes:
            e, d, r = emb[(shape, size)], dist[(shape, size)], raw.get((shape, size))
            raw_text = (f"{r['ms_per_task']:>10.2f}{r['largest']:>10.0f}{r['rss']:>8.0f}"
                        if r else f"{'(quadratic: skipped)':>28}")
            print(f"{shape:<9}{size:>7} | {e['ms_per_task']:>16.2f}{e['largest']:>7.0f}"
                  f"{e['rss']:>8.0f} | {d['ms_per_task']:>11.2f}{d['largest']:>7.0f}"
                  f"{d['rss']:>8.0f} | {raw_text}")
        first, last = sizes[0], sizes[-1]
        print(f"{shape:<9} per-task cost {last} / {first} tasks: embedded "
              f"{emb[(shape, last)]['ms_per_task'] / emb[(shape, first)]['ms_per_task']:.2f}x, "
              f"distributed "
              f"{dist[(shape, last)]['ms_per_task'] / dist[(shape, first)]['ms_per_task']:.2f}x")


if __name__ == "__main__":
    main()
