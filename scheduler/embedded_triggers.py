"""Flow triggers in embedded mode: a thread reads the in-memory store's ended
executions and hands each to FlowTriggers (the distributed loop's evaluator),
with the once-only decisions and preconditions windows kept in memory. A bound
on the executions it starts stops a chain of flows triggering each other."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass

from celery import Celery

from harrier.common.execution import Execution
from harrier.common.flow import Flow
from harrier.common.memory_store import MemoryStore
from harrier.common.triggers import FlowTrigger
from harrier.scheduler.flow_catalog import FlowCatalog
from harrier.scheduler.flow_triggers import FlowTriggers, MemoryDecisions
from harrier.scheduler.trigger_state import MemoryTriggerStates, TriggerStates

log = logging.getLogger("harrier.scheduler.flow_triggers")


@dataclass(frozen=True)
class TriggeredExecution:
    """An execution a Flow trigger started, and what started it."""

    id: str
    namespace: str
    flow_id: str
    trigger_id: str
    upstream_id: str
    upstream_flow: str  # namespace.flowId
    upstream_state: str


class EmbeddedFlowTriggers:
    """`with EmbeddedFlowTriggers(catalog, store, app) as triggers:` fires the
    catalog's Flow triggers for every execution of `store` that ends."""

    def __init__(self, catalog: FlowCatalog, store: MemoryStore, app: Celery, *,
                 max_triggered: int | None = None, states: TriggerStates | None = None,
                 secrets: Mapping[str, str] | None = None, refresh: bool = False) -> None:
        self.catalog = catalog
        self.store = store
        self.max_triggered = max_triggered
        self.refresh = refresh  # re-read the catalog before each end (flows pushed via the API)
        self.triggers = FlowTriggers(
            catalog, store, app,
            decisions=MemoryDecisions(),
            states=states if states is not None else MemoryTriggerStates(),
            secrets=secrets, admit=self._admit, on_fired=self._fired)
        self._lock = threading.Condition()
        self._triggered: list[TriggeredExecution] = []
        self._handled = 0  # ends read and evaluated
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.refused: str | None = None  # why the bound stopped a chain

    def __enter__(self) -> EmbeddedFlowTriggers:
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name="harrier-embedded-flow-triggers")
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self.store.wake_waiters()
        if self._thread is not None:
            self._thread.join(5)

    # -- reading (any thread)
    def triggered(self) -> list[TriggeredExecution]:
        with self._lock:
            return list(self._triggered)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until every execution ended so far has been evaluated (its
        triggered executions are started); False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._lock:
                if not self.store.ended_executions(self._handled):
                    return True
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._lock.wait(0.05 if left is None else min(0.05, left))

    # -- the thread
    def _run(self) -> None:
        while not self._stop.is_set():
            ended = self.store.ended_executions(self._handled, block=1.0)
            for execution_id in ended:
                if self._stop.is_set():
                    return
                if self.refresh:
                    self.catalog.refresh()
                try:
                    # In memory nothing is unavailable; a failure is a bug, logged.
                    self.triggers.handle(execution_id)
                except Exception:
                    log.exception("Flow triggers for the end of execution %s failed",
                                  execution_id)
                with self._lock:
                    self._handled += 1
                    self._lock.notify_all()

    def _admit(self, flow: Flow, trigger: FlowTrigger, upstream: Execution) -> bool:
        with self._lock:
            if self.max_triggered is None or len(self._triggered) < self.max_triggered:
                return True
            if self.refused is None:
                self.refused = (
                    f"stopped after {self.max_triggered} triggered executions: flow "
                    f"{flow.namespace}.{flow.id} (trigger {trigger.id}) would start again "
                    f"after {upstream.namespace}.{upstream.flow_id} execution {upstream.id} "
                    f"ended {upstream.state.current.value}; do these flows trigger each "
                    f"other in a loop? (raise the bound with --max-triggered)")
                log.info("%s", self.refused)  # the caller reports it
            return False

    def _fired(self, flow: Flow, trigger: FlowTrigger, upstream: Execution,
               execution_id: str) -> None:
        with self._lock:
            self._triggered.append(TriggeredExecution(
                execution_id, flow.namespace, flow.id, trigger.id, upstream.id,
                f"{upstream.namespace}.{upstream.flow_id}", upstream.state.current.value))
            self._lock.notify_all()
