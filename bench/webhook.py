"""Webhook load on loopback: requests/s and request-to-enqueued latency (the
webhook answers once the execution is stored and its canvas is on the broker).

Starts its own redis-server and one `harrier scheduler` process; the load is
a bounded number of requests from a few client threads to 127.0.0.1 only.

    .venv/bin/python bench/webhook.py [--requests 2000] [--clients 8]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fixtures.redis_server import free_port, start_redis_server  # noqa: E402

FLOW = """id: hook
namespace: bench
tasks:
  - id: say
    type: io.kestra.plugin.core.log.Log
    message: "{{ trigger.body.n }}"
triggers:
  - id: incoming
    type: io.kestra.plugin.core.trigger.Webhook
    key: bench-key-0123456789
"""


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        (workdir / "flows").mkdir()
        (workdir / "flows" / "hook.yaml").write_text(FLOW)
        redis = start_redis_server(workdir)
        port = free_port()
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("HARRIER_")},
               "HARRIER_BROKER_URL": redis.url, "HARRIER_FLOWS_DIR": str(workdir / "flows"),
               "HARRIER_API_HOST": "127.0.0.1", "HARRIER_API_PORT": str(port),
               "HARRIER_LOG_LEVEL": "WARNING", "PYTHONPATH": str(ROOT)}
        log = (workdir / "scheduler.log").open("wb")
        server = subprocess.Popen([sys.executable, "-m", "harrier", "scheduler"], env=env,
                                  stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}/api/v1/executions/webhook/bench/hook/bench-key-0123456789"
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.post(url, json={"n": -1}, timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("scheduler did not come up:\n"
                                     + (workdir / "scheduler.log").read_text())
                time.sleep(0.2)
            latencies: list[float] = []
            errors: list[int] = []
            lock = threading.Lock()
            per_client = args.requests // args.clients

            def client(offset: int) -> None:
                with httpx.Client(timeout=30) as http:
                    for index in range(per_client):
                        started = time.perf_counter()
                        response = http.post(url, json={"n": offset * per_client + index})
                        elapsed = time.perf_counter() - started
                        with lock:
                            latencies.append(elapsed)
                            if response.status_code != 200:
                                errors.append(response.status_code)

            threads = [threading.Thread(target=client, args=(i,)) for i in range(args.clients)]
            started = time.perf_counter()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            wall = time.perf_counter() - started
        finally:
            server.terminate()
            server.wait(30)
            redis.stop()
    total = len(latencies)
    print(f"{total} webhook requests from {args.clients} clients on loopback, "
          f"{len(errors)} errors")
    print(f"throughput       {total / wall:8.0f} requests/s")
    print(f"latency p50      {statistics.median(latencies) * 1000:8.1f} ms  (request -> enqueued)")
    print(f"latency p99      {percentile(latencies, 0.99) * 1000:8.1f} ms")


if __name__ == "__main__":
    main()
