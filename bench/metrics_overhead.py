"""What Prometheus metrics cost a worker: bench/distributed.py's chain of 10
`true` tasks on two prefork workers of the same Redis, one plain and one with
`--metrics-port` (each serving its own worker group, so a flow runs wholly on
one of them), alternating run by run so a drifting load weighs on both.
Prints medians and the ratio metered / plain; the worker is scraped during the
run, as Prometheus would.

    .venv/bin/python bench/metrics_overhead.py [--runs 30] [--workers 2]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harrier.common.flow import parse_flow  # noqa: E402
from harrier.common.state import State  # noqa: E402
from tests.fixtures.redis_server import RedisServer, free_port  # noqa: E402
from tests.fixtures.workers import make_cluster  # noqa: E402

TRUE = "type: io.kestra.plugin.scripts.shell.Commands, commands: ['true']"


def chain(group: str) -> str:
    return f"id: chain_{group}\nnamespace: bench\ntasks:\n" + "".join(
        f"  - {{id: t{i}, {TRUE}, workerGroup: {{key: {group}}}}}\n" for i in range(10))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        server = RedisServer(workdir)
        server.start()
        cluster = make_cluster(server.url, server.url, workdir, HARRIER_LOG_LEVEL="WARNING")
        from harrier.common.celery_app import app
        from harrier.scheduler.executions import create_execution, start_execution

        store = cluster.store
        flows = {group: parse_flow(chain(group), "bench") for group in ("plain", "metered")}
        port = free_port()
        stop = threading.Event()
        scrapes = [0]

        def scrape() -> None:  # every second, as a busy Prometheus would (default: 15 s)
            while not stop.wait(1.0):
                httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).raise_for_status()
                scrapes[0] += 1

        def run(group: str) -> float:
            started = time.perf_counter()
            execution = create_execution(store, flows[group], {})
            start_execution(app, flows[group], execution, store=store)
            assert store.wait_terminal(execution.id, 120).state.current == State.SUCCESS
            return time.perf_counter() - started

        try:
            cluster.start_worker("plain", concurrency=args.workers, queues="plain")
            cluster.start_worker("metered", concurrency=args.workers, queues="metered",
                                 args=("--metrics-port", str(port)))
            scraper = threading.Thread(target=scrape, daemon=True)
            scraper.start()
            times: dict[str, list[float]] = {"plain": [], "metered": []}
            run("plain"), run("metered")  # warm up
            for index in range(args.runs):
                order = ("plain", "metered") if index % 2 == 0 else ("metered", "plain")
                for group in order:
                    times[group].append(run(group))
            text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
        finally:
            stop.set()
            cluster.stop_all()
            server.stop()
    ended = sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                if line.startswith("kestra_worker_ended_count_total{"))
    plain, metered = (statistics.median(times[g]) * 1000 for g in ("plain", "metered"))
    print(f"{args.runs} alternating runs of a chain of 10 `true` tasks, "
          f"{args.workers} prefork processes per worker; {scrapes[0]} scrapes; the metered "
          f"worker counted {ended:.0f} ended task runs")
    print(f"{'without metrics':<20}{plain:>10.1f} ms (median)")
    print(f"{'with metrics':<20}{metered:>10.1f} ms (median)")
    print(f"{'metered / plain':<20}{metered / plain:>10.3f}x")


if __name__ == "__main__":
    main()
