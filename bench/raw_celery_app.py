"""The raw-Celery baseline of bench/distributed.py: the same Redis, the same
worker settings (prefork, acks_late, prefetch 1), tasks that do nothing or run
`true` in a subprocess."""

from __future__ import annotations

import os
import subprocess

from celery import Celery

URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
app = Celery("raw", broker=URL, backend=URL)
app.conf.update(task_acks_late=True, task_reject_on_worker_lost=True,
                worker_prefetch_multiplier=1, task_serializer="json",
                result_serializer="json", accept_content=["json"],
                broker_connection_retry_on_startup=True, worker_hijack_root_logger=False)


@app.task(name="raw.noop")
def noop() -> None:
    return None


@app.task(name="raw.true")
def true() -> int:
    return subprocess.run(["/bin/sh", "-c", "true"], check=True).returncode


@app.task(name="raw.done")
def done(*_: object) -> None:
    return None
