"""The process-wide runtime a worker's task bodies use: settings, store and
Celery app, installed once at start-up (before prefork workers fork)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from celery import Celery

from harrier.common.errors import HarrierError
from harrier.common.flow import Flow, parse_flow
from harrier.common.settings import Settings
from harrier.common.store import ExecutionStore
from harrier.worker.kill_watch import KillWatch


@dataclass
class Runtime:
    settings: Settings
    store: ExecutionStore
    app: Celery
    _flows: dict[tuple[str, str, int], Flow] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)
    kill_watch: KillWatch = field(init=False)
    # Threads of one process (the embedded worker, a threads pool) that all
    # start on a new flow would each parse it: one parses, the others wait.
    _flows_lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.kill_watch = KillWatch(self.store)

    def flow(self, namespace: str, flow_id: str, revision: int) -> Flow:
        """The exact revision an execution was created with, parsed once per process."""
        key = (namespace, flow_id, revision)
        flow = self._flows.get(key)
        if flow is not None:
            return flow
        with self._flows_lock:
            flow = self._flows.get(key)
            if flow is None:
                record = self.store.get_flow(namespace, flow_id, revision)
                flow = parse_flow(record.source, f"{namespace}.{flow_id}@{revision}")
                if len(self._flows) > 512:
                    self._flows.clear()
                self._flows[key] = flow
        return flow


_current: Runtime | None = None


def install(runtime: Runtime) -> Runtime:
    global _current
    _current = runtime
    return runtime


def current() -> Runtime:
    if _current is None:
        raise HarrierError("no Harrier runtime installed in this process: start workers "
                           "with `harrier worker` (or `harrier run` for embedded mode)")
    return _current
