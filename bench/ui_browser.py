"""What the UI benchmarks share: a redis-server, a `harrier api` process over
it (no worker: the benchmarks write their executions into the store), and a
headless Debian Chromium driven by Playwright. Loopback only, bounded."""

from __future__ import annotations

import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harrier.common.redis_store import RedisStore  # noqa: E402
from tests.fixtures.redis_server import RedisServer, free_port, start_redis_server  # noqa: E402

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


@dataclass
class Stack:
    redis: RedisServer
    store: RedisStore
    url: str


@contextlib.contextmanager
def stack() -> Iterator[Stack]:
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        redis = start_redis_server(workdir)
        port = free_port()
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("HARRIER_")},
               "HARRIER_BROKER_URL": redis.url, "HARRIER_API_HOST": "127.0.0.1",
               "HARRIER_API_PORT": str(port), "HARRIER_LOG_LEVEL": "WARNING",
               "HARRIER_WORK_DIR": str(workdir / "work"), "PYTHONPATH": str(ROOT)}
        log = (workdir / "api.log").open("wb")
        api = subprocess.Popen([sys.executable, "-m", "harrier", "api"], env=env, stdout=log,
                               stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                        break
                if api.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError((workdir / "api.log").read_text())
                time.sleep(0.1)
            store = RedisStore.from_url(redis.url)
            yield Stack(redis, store, url)
            store.close()
        finally:
            api.terminate()
            api.wait(20)
            log.close()
            redis.stop()


@contextlib.contextmanager
def chromium(width: int = 1280, height: int = 900) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        raise SystemExit("chromium not found: apt-get install chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": width, "height": height})
        try:
            yield context
        finally:
            context.close()
            browser.close()


def median_ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:.0f} ms"
