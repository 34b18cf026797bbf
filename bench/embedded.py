"""Embedded-mode latency: a chain of 10 `true` tasks and a 1 -> 10 -> 1 fan-out,
median of repeated runs, against the cost of the same 10 subprocesses alone.

    .venv/bin/python bench/embedded.py [--runs 20]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.shapes import CHAIN, FANOUT
from harrier.common.flow import parse_flow
from harrier.common.settings import Settings
from harrier.common.state import State
from harrier.scheduler.executions import create_execution, start_execution
from harrier.worker.embedded import EmbeddedRuntime


def time_flow(runtime, text: str) -> float:
    flow = parse_flow(text, "bench")
    started = time.perf_counter()
    execution = create_execution(runtime.store, flow, {})
    start_execution(runtime.app, flow, execution, store=runtime.store)
    done = runtime.store.wait_terminal(execution.id, 60)
    elapsed = time.perf_counter() - started
    assert done.state.current == State.SUCCESS, done.state.current
    return elapsed


def baseline(count: int) -> float:
    started = time.perf_counter()
    for _ in range(count):
        subprocess.run(["/bin/sh", "-c", "set -e\ntrue"], check=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        settings = Settings(work_root=Path(work))
        with EmbeddedRuntime(settings) as runtime:
            for text in (CHAIN, FANOUT):  # warm up
                time_flow(runtime, text)
            rows = []
            for name, text, processes in (("chain of 10 `true`", CHAIN, 10),
                                          ("fan-out 1 -> 10 -> 1", FANOUT, 12)):
                samples = [time_flow(runtime, text) for _ in range(args.runs)]
                base = statistics.median(baseline(processes) for _ in range(5))
                rows.append((name, statistics.median(samples), min(samples), base))
    print(f"embedded mode, median of {args.runs} runs (2-core machine)")
    print(f"{'flow':<24}{'median':>10}{'min':>10}{'subprocesses alone':>22}{'ratio':>8}")
    for name, median, low, base in rows:
        print(f"{name:<24}{median * 1000:>8.1f}ms{low * 1000:>8.1f}ms"
              f"{base * 1000:>20.1f}ms{median / base:>8.2f}")


if __name__ == "__main__":
    main()
