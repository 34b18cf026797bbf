"""One thread per worker process that watches the executions of running tasks
and sets their cancel events when an execution is being killed."""

from __future__ import annotations

import itertools
import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from common.errors import HarrierError
from common.state import State
from common.store import ExecutionStore

log = logging.getLogger(__name__)

POLL_SECONDS = 0.2
STOPPED = (State.KILLING, State.KILLED, State.CANCELLED)


class KillWatch:
    def __init__(self, store: ExecutionStore) -> None:
        self._store = store
        self._lock = threading.Lock()
        self._watched: dict[int, tuple[str, threading.Event]] = {}
        self._ids = itertools.count()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = 0

    @contextmanager
    def watching(self, execution_id: str, cancel: threading.Event) -> Iterator[None]:
        key = next(self._ids)
        with self._lock:
            self._watched[key] = (execution_id, cancel)
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
        while True:
            self._wake.wait(POLL_SECONDS)
            with self._lock:
                watched = list(self._watched.values())
            by_execution: dict[str, list[threading.Event]] = {}
            for execution_id, event in watched:
                by_execution.setdefault(execution_id, []).append(event)
            for execution_id, events in by_execution.items():
                try:
                    state = self._store.execution_state(execution_id)
                except HarrierError as exc:  # store briefly unreachable: keep running
                    log.warning("kill watch for %s: %s", execution_id, exc)
                    continue
                if state in STOPPED:
                    for event in events:
                        event.set()
