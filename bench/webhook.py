"""Webhook load on loopback: requests/s and latency (the webhook answers once
the execution is stored and its canvas is on the broker), against a baseline
measured in the same run: a minimal FastAPI endpoint that writes one Redis key
(bench/raw_fastapi_redis.py), served by uvicorn with as many processes.

Starts its own redis-server, one `harrier scheduler` and the baseline server;
the load is a bounded number of requests from `--clients` concurrent
connections (asyncio, one client process) to 127.0.0.1 only. Checks that every
request became exactly one execution.

    .venv/bin/python bench/webhook.py [--requests 3000] [--clients 50] [--api-workers 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fixtures.redis_server import free_port, start_redis_server  # noqa: E402

KEY = "bench-key-0123456789"
PATH = f"/api/v1/executions/webhook/bench/hook/{KEY}"
FLOW = f"""id: hook
namespace: bench
tasks:
  - id: say
    type: io.kestra.plugin.core.log.Log
    message: "{{{{ trigger.body.n }}}}"
triggers:
  - id: incoming
    type: io.kestra.plugin.core.trigger.Webhook
    key: {KEY}
"""


@dataclass
class Result:
    name: str
    requests: int
    errors: int
    wall: float
    latencies: list[float]

    @property
    def rate(self) -> float:
        return self.requests / self.wall

    def p(self, fraction: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def wait_up(url: str, server: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.post(url, json={"n": -1}, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline or server.poll() is not None:
            raise SystemExit(f"{url} did not come up:\n{log.read_text()}")
        time.sleep(0.2)


async def load(name: str, url: str, requests: int, clients: int) -> Result:
    """`clients` keep-alive connections posting JSON bodies, written with asyncio
    streams: a Python HTTP client library would cost more CPU than the servers
    under test on this 2-core machine, and measure itself."""
    parsed = httpx.URL(url)
    latencies: list[float] = []
    errors = 0
    queue = iter(range(requests))

    async def client() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection(parsed.host, parsed.port)
        try:
            for n in queue:
                body = json.dumps({"n": n}).encode()
                started = time.perf_counter()
                writer.write(f"POST {parsed.raw_path.decode()} HTTP/1.1\r\nHost: {parsed.host}\r\n"
                             f"Content-Type: application/json\r\nContent-Length: {len(body)}"
                             "\r\n\r\n".encode() + body)
                head = await reader.readuntil(b"\r\n\r\n")
                status = int(head.split(b" ", 2)[1])
                length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))  # type: ignore[union-attr]
                await reader.readexactly(length)
                latencies.append(time.perf_counter() - started)
                errors += status != 200
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    return Result(name, requests, errors, time.perf_counter() - started, latencies)


def start(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--api-workers", type=int, default=2,
                        help="HARRIER_API_WORKERS, and the baseline's uvicorn --workers")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        (workdir / "flows").mkdir()
        (workdir / "flows" / "hook.yaml").write_text(FLOW)
        redis = start_redis_server(workdir)
        harrier_port, raw_port = free_port(), free_port()
        base = {k: v for k, v in os.environ.items() if not k.startswith("HARRIER_")}
        harrier = start([sys.executable, "-m", "harrier", "scheduler"], {
            **base, "HARRIER_BROKER_URL": redis.url, "HARRIER_FLOWS_DIR": str(workdir / "flows"),
            "HARRIER_API_HOST": "127.0.0.1", "HARRIER_API_PORT": str(harrier_port),
            "HARRIER_API_WORKERS": str(args.api_workers), "HARRIER_LOG_LEVEL": "WARNING",
            "PYTHONPATH": str(ROOT)}, workdir / "harrier.log")
        raw = start([sys.executable, "-m", "uvicorn", "bench.raw_fastapi_redis:app",
                     "--host", "127.0.0.1", "--port", str(raw_port), "--log-level", "warning",
                     "--workers", str(args.api_workers)],
                    {**base, "BENCH_REDIS_URL": redis.url, "PYTHONPATH": str(ROOT)},
                    workdir / "raw.log")
        harrier_url = f"http://127.0.0.1:{harrier_port}{PATH}"
        raw_url = f"http://127.0.0.1:{raw_port}{PATH}"
        try:
            wait_up(harrier_url, harrier, workdir / "harrier.log")
            wait_up(raw_url, raw, workdir / "raw.log")
            # Warm both up, then measure them one after the other.
            asyncio.run(load("warm-up", harrier_url, 200, args.clients))
            asyncio.run(load("warm-up", raw_url, 200, args.clients))
            raw_result = asyncio.run(load("FastAPI + one Redis SET", raw_url, args.requests,
                                          args.clients))
            ours = asyncio.run(load("Harrier webhook", harrier_url, args.requests,
                                    args.clients))
            executions = httpx.get(f"http://127.0.0.1:{harrier_port}/api/v1/executions",
                                   params={"namespace": "bench", "flowId": "hook", "size": 1},
                                   timeout=30).json()["total"]
        finally:
            for server in (harrier, raw):
                server.terminate()
                server.wait(30)
            redis.stop()
    expected = args.requests + 200 + 1  # measured, warm-up, the wait_up probe
    print(f"{args.requests} webhook requests, {args.clients} concurrent clients, "
          f"{args.api_workers} API process(es), loopback")
    print(f"{'':26}{'req/s':>8}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}")
    for result in (raw_result, ours):
        print(f"{result.name:26}{result.rate:8.0f}{result.p(0.5) * 1000:9.1f}"
              f"{result.p(0.99) * 1000:9.1f}{result.errors:8d}")
    print(f"Harrier / baseline throughput: {ours.rate / raw_result.rate:.2f}")
    print(f"executions created: {executions} for {expected} accepted requests "
          f"({'exactly one each' if executions == expected - ours.errors else 'MISMATCH'})")


if __name__ == "__main__":
    main()
