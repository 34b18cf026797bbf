"""Live workers: every worker writes a heartbeat to Redis every 2 s (its
queues, concurrency and the tasks it is running, from Celery's own list of
active requests); the UI shows the workers heard from in the last 10 s."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import redis
from celery.worker import state as worker_state

log = logging.getLogger(__name__)

WORKERS_KEY = "harrier:workers"  # hash: worker hostname -> heartbeat JSON
BEAT_SECONDS = 2.0
LIVE_SECONDS = 10.0
FORGET_SECONDS = 3600.0  # a worker silent this long is dropped from the hash


def running_tasks() -> list[dict[str, Any]]:
    """The task runs this worker process is running now: Celery's run_task
    requests carry (execution id, task id) as their first arguments."""
    found = []
    for request in list(worker_state.active_requests):
        args = request.args if isinstance(request.args, (list, tuple)) else []
        entry: dict[str, Any] = {"celeryTask": request.name, "celeryId": request.id,
                                 "started": request.time_start}
        if len(args) >= 2 and isinstance(args[0], str) and isinstance(args[1], str):
            entry["executionId"], entry["taskId"] = args[0], args[1]
        found.append(entry)
    return found


class PresenceBeat:
    """A daemon thread writing this worker's heartbeat until stop()."""

    def __init__(self, client: redis.Redis, hostname: str, queues: list[str],
                 concurrency: int, pool: str, interval: float = BEAT_SECONDS) -> None:
        self.client = client
        self.hostname = hostname
        self.started = time.time()
        self.static = {"hostname": hostname, "queues": queues, "concurrency": concurrency,
                       "pool": pool, "pid": os.getpid(), "started": self.started}
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="harrier-presence",
                                        daemon=True)

    def start(self) -> None:
        self.beat()
        self._thread.start()

    def beat(self) -> None:
        document = {**self.static, "beat": time.time(), "running": running_tasks()}
        try:
            self.client.hset(WORKERS_KEY, self.hostname, json.dumps(document))
        except redis.RedisError as exc:
            log.warning("worker heartbeat not written: %s", exc)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.beat()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(self.interval + 1)
        try:
            self.client.hdel(WORKERS_KEY, self.hostname)
        except redis.RedisError as exc:
            log.warning("worker heartbeat not removed: %s", exc)


@dataclass
class WorkerInfo:
    hostname: str
    queues: list[str]
    concurrency: int
    pool: str
    pid: int
    started: float
    beat: float
    running: list[dict[str, Any]] = field(default_factory=list)

    def age(self, now: float) -> float:
        return max(0.0, now - self.beat)


def live_workers(client: redis.Redis, now: float | None = None) -> list[WorkerInfo]:
    """Workers heard from within LIVE_SECONDS, by hostname; long-silent ones are
    removed (a worker killed with -9 never says goodbye)."""
    moment = time.time() if now is None else now
    found = []
    forget = []
    for raw_name, raw in client.hgetall(WORKERS_KEY).items():
        try:
            data = json.loads(raw)
            info = WorkerInfo(**{k: data[k] for k in (
                "hostname", "queues", "concurrency", "pool", "pid", "started", "beat")},
                running=list(data.get("running") or []))
        except (ValueError, KeyError, TypeError):
            forget.append(raw_name)
            continue
        if info.age(moment) > FORGET_SECONDS:
            forget.append(raw_name)
        elif info.age(moment) <= LIVE_SECONDS:
            found.append(info)
    if forget:
        client.hdel(WORKERS_KEY, *forget)
    return sorted(found, key=lambda w: w.hostname)
