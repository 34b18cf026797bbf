"""Subflow fan-out on a real Redis and real worker processes: a parent whose
ForEach starts N child executions (each one Return task) and waits for them,
against the same N values as plain Return tasks in the parent. The parent
holds no worker slot while it waits, so one worker process with one slot is
enough; the figure is what a child execution costs over a task.

    .venv/bin/python bench/subflows.py [--children 20] [--runs 5] [--concurrency 1]
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

from harrier.common.celery_app import app  # noqa: E402
from harrier.common.flow import parse_flow  # noqa: E402
from harrier.common.launch import create_execution, start_execution  # noqa: E402
from harrier.common.state import State  # noqa: E402
from tests.fixtures.redis_server import RedisServer  # noqa: E402
from tests.fixtures.workers import make_cluster  # noqa: E402

CHILD = """
id: child
namespace: bench
inputs:
  - {id: value, type: STRING}
tasks:
  - {id: echo, type: io.kestra.plugin.core.debug.Return, format: "{{ inputs.value }}"}
outputs:
  - {id: value, type: STRING, value: "{{ outputs.echo.value }}"}
"""
PARENT = """
id: {id}
namespace: bench
tasks:
  - id: each
    type: io.kestra.plugin.core.flow.ForEach
    values: {values}
    concurrencyLimit: 0
    tasks:
{body}
"""
SUBFLOW = """      - id: call
        type: io.kestra.plugin.core.flow.Subflow
        namespace: bench
        flowId: child
        inputs: {value: "{{ taskrun.value }}"}"""
TASK = """      - id: call
        type: io.kestra.plugin.core.debug.Return
        format: '{{ taskrun.value }}'"""


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--children", type=int, default=20)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=1)
    return parser.parse_args()


def compare(parents: dict[str, str], args: argparse.Namespace, what: str) -> None:
    """Run each parent flow `args.runs` times, alternating, on one worker of
    `args.concurrency` slots beside a stored CHILD flow; print the medians."""
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        server = RedisServer(workdir)
        server.start()
        cluster = make_cluster(server.url, server.url, workdir, HARRIER_LOG_LEVEL="WARNING")
        try:
            cluster.start_worker("bench", concurrency=args.concurrency)
            child = parse_flow(CHILD, "child.yaml")
            cluster.store.put_flow(child.namespace, child.id, child.source)
            flows = {name: parse_flow(text, name) for name, text in parents.items()}
            samples: dict[str, list[float]] = {name: [] for name in flows}
            for _ in range(args.runs):
                for name, flow in flows.items():
                    started = time.perf_counter()
                    execution = create_execution(cluster.store, flow, {})
                    start_execution(app, flow, execution, store=cluster.store)
                    done = cluster.store.wait_terminal(execution.id, 600)
                    assert done.state.current == State.SUCCESS, done.error
                    samples[name].append(time.perf_counter() - started)
            for name, times in samples.items():
                print(f"{name:11s} {args.children} {what}, 1 worker x {args.concurrency}: "
                      f"median {statistics.median(times) * 1000:.0f} ms "
                      f"(min {min(times) * 1000:.0f}, max {max(times) * 1000:.0f})")
        finally:
            cluster.stop_all()
            server.stop()


def main() -> None:
    args = arguments()
    values = [str(i) for i in range(args.children)]
    compare({name: PARENT.format(id=name, values=values, body=body)
             for name, body in (("subflows", SUBFLOW), ("tasks", TASK))}, args, "values")


if __name__ == "__main__":
    main()
