"""One thread per worker process that watches the executions of running tasks,
sets their cancel events when an execution is being killed, and sends the
heartbeats that tell a redelivered copy of a task its original still runs."""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from harrier.common.errors import HarrierError
from harrier.common.state import STOPPING
from harrier.common.store import ExecutionStore

log = logging.getLogger(__name__)

POLL_SECONDS = 0.2
HEARTBEAT_SECONDS = 2.0
# An attempt whose last heartbeat is older than this is taken for dead.
LEASE_SECONDS = 10.0


def lease_seconds(task_lost_after: float) -> float:
    """How old a heartbeat is when a worker that receives the attempt's task
    again takes it over: LEASE_SECONDS, or HARRIER_TASK_LOST_AFTER when shorter
    (a scheduler that re-sent the task after that silence must not see its copy
    wait for LEASE_SECONDS as a duplicate)."""
    return min(LEASE_SECONDS, task_lost_after)


class KillWatch:
    def __init__(self, store: ExecutionStore) -> None:
        self._store = store
        self._lock = threading.Lock()
        self._watched: dict[int, tuple[str, str | None, threading.Event]] = {}
        self._ids = itertools.count()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = 0

    @contextmanager
    def watching(self, execution_id: str, cancel: threading.Event,
                 task_run_id: str | None = None) -> Iterator[None]:
        key = next(self._ids)
        with self._lock:
            self._watched[key] = (execution_id, task_run_id, cancel)
            self._ensure_thread()
        try:
            yield
        finally:
            with self._lock:
                self._watched.pop(key, None)

    def _ensure_thread(self) -> None:
        # A prefork child inherits the object but not the thread: start one per process.
        if self._thread is None or self._pid != os.getpid() or not self._thread.is_alive():
            self._pid = os.getpid()
            self._thread = threading.Thread(target=self._run, daemon=True,
                                            name="harrier-kill-watch")
            self._thread.start()

    def _run(self) -> None:
        last_beat = 0.0
        while True:
            self._wake.wait(POLL_SECONDS)
            with self._lock:
                watched = list(self._watched.values())
            if time.monotonic() - last_beat >= HEARTBEAT_SECONDS:
                last_beat = time.monotonic()
                self._beat(watched)
            by_execution: dict[str, list[threading.Event]] = {}
            for execution_id, _, event in watched:
                by_execution.setdefault(execution_id, []).append(event)
            for execution_id, events in by_execution.items():
                try:
                    state = self._store.execution_state(execution_id)
                except HarrierError as exc:  # store briefly unreachable: keep running
                    log.warning("kill watch for %s: %s", execution_id, exc)
                    continue
                if state in STOPPING:
                    for event in events:
                        event.set()

    def _beat(self, watched: list[tuple[str, str | None, threading.Event]]) -> None:
        for execution_id, task_run_id, _ in watched:
            if task_run_id is None:
                continue
            try:
                self._store.beat(execution_id, task_run_id)
            except HarrierError as exc:
                log.warning("heartbeat for %s: %s", task_run_id, exc)
