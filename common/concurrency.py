"""Flow concurrency (`concurrency: {limit, behavior}`): an execution takes a
slot of its flow when it starts and gives it back when it ends; past the
limit it waits in a per-flow FIFO (QUEUE) or ends CANCELLED or FAILED.
Slots live in Redis (atomic Lua) in distributed mode, in memory embedded."""

from __future__ import annotations

import logging
import threading
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any, Literal, Protocol

from celery import Celery

from harrier.common.dispatch import FlowRef, publish, start_messages
from harrier.common.errors import ExecutionNotFound
from harrier.common.execution import Execution
from harrier.common.flow import Flow, parse_flow
from harrier.common.lua import lua_script
from harrier.common.state import State
from harrier.common.store import ExecutionStore

log = logging.getLogger("harrier.concurrency")

# (namespace, flow id, revision) -> the parsed flow; workers pass their cache.
FlowLoader = Callable[[str, str, int], Flow]

Verdict = Literal["RUN", "QUEUED", "REJECTED"]




class ConcurrencySlots(Protocol):
    def admit(self, flow_key: str, execution_id: str, limit: int, queue: bool) -> Verdict: ...
    # Frees the execution's slot; returns the queued executions that now hold one.
    def release(self, flow_key: str, execution_id: str, limit: int) -> list[str]: ...
    def running(self, flow_key: str) -> set[str]: ...


class RedisSlots:
    def __init__(self, client: Any, prefix: str = "harrier:concurrency") -> None:
        self.redis = client
        self.prefix = prefix
        self._admit = client.register_script(lua_script("harrier.common", "admit_execution"))
        self._release = client.register_script(lua_script("harrier.common", "release_slot"))

    def _keys(self, flow_key: str) -> list[str]:
        return [f"{self.prefix}:{flow_key}:running", f"{self.prefix}:{flow_key}:queue"]

    def admit(self, flow_key: str, execution_id: str, limit: int, queue: bool) -> Verdict:
        raw = self._admit(keys=self._keys(flow_key), args=[execution_id, limit, int(queue)])
        text = raw.decode() if isinstance(raw, bytes) else str(raw)
        return "RUN" if text == "RUN" else "QUEUED" if text == "QUEUED" else "REJECTED"

    def release(self, flow_key: str, execution_id: str, limit: int) -> list[str]:
        raw = self._release(keys=self._keys(flow_key), args=[execution_id, limit])
        return [item.decode() for item in raw]

    def running(self, flow_key: str) -> set[str]:
        return {m.decode() if isinstance(m, bytes) else m
                for m in self.redis.smembers(self._keys(flow_key)[0])}


class MemorySlots:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: dict[str, set[str]] = {}
        self._queues: dict[str, deque[str]] = {}

    def admit(self, flow_key: str, execution_id: str, limit: int, queue: bool) -> Verdict:
        with self._lock:
            running = self._running.setdefault(flow_key, set())
            waiting = self._queues.setdefault(flow_key, deque())
            if execution_id in running:
                return "RUN"
            if len(running) < limit and not (queue and waiting):
                running.add(execution_id)
                return "RUN"
            if queue:
                waiting.append(execution_id)
                return "QUEUED"
            return "REJECTED"

    def release(self, flow_key: str, execution_id: str, limit: int) -> list[str]:
        with self._lock:
            running = self._running.setdefault(flow_key, set())
            waiting = self._queues.setdefault(flow_key, deque())
            running.discard(execution_id)
            started = []
            while len(running) < limit and waiting:
                next_id = waiting.popleft()
                running.add(next_id)
                started.append(next_id)
            return started

    def running(self, flow_key: str) -> set[str]:
        with self._lock:
            return set(self._running.get(flow_key, ()))


_memory_slots: weakref.WeakKeyDictionary[object, MemorySlots] = weakref.WeakKeyDictionary()
_memory_lock = threading.Lock()


def slots_for(store: ExecutionStore) -> ConcurrencySlots:
    """Redis slots beside a RedisStore; one in-memory set per MemoryStore."""
    client = getattr(store, "redis", None)
    if client is not None:  # a RedisStore: the slots live beside it
        return RedisSlots(client)
    with _memory_lock:
        slots = _memory_slots.get(store)
        if slots is None:
            slots = _memory_slots[store] = MemorySlots()
        return slots


def flow_key(namespace: str, flow_id: str) -> str:
    return f"{namespace}/{flow_id}"


def stored_flow_loader(store: ExecutionStore) -> FlowLoader:
    def load(namespace: str, flow_id: str, revision: int) -> Flow:
        record = store.get_flow(namespace, flow_id, revision)
        return parse_flow(record.source, f"{namespace}.{flow_id}")
    return load


def admit_execution(app: Celery, flow: Flow, execution: Execution,
                    store: ExecutionStore) -> bool:
    """True if the execution may start now. Otherwise it is left QUEUED (started
    later by release_slot), CANCELLED or FAILED, per the flow's behavior."""
    assert flow.concurrency is not None
    slots = slots_for(store)
    key = flow_key(flow.namespace, flow.id)
    limit, behavior = flow.concurrency.limit, flow.concurrency.behavior
    verdict = slots.admit(key, execution.id, limit, behavior == "QUEUE")
    if verdict == "RUN":
        return True
    if verdict == "QUEUED":
        # only_from: a slot freed meanwhile may already have started it.
        store.change_execution_state(execution.id, State.QUEUED, only_from=(State.CREATED,))
        log.info("execution %s of %s.%s queued: its concurrency limit (%d) is reached",
                 execution.id, flow.namespace, flow.id, limit)
        _free_stale_slots(store, app, key, limit)
        return False
    if _free_stale_slots(store, app, key, limit) and \
            slots.admit(key, execution.id, limit, False) == "RUN":
        return True
    message = (f"flow {flow.namespace}.{flow.id} reached its concurrency limit of {limit} "
               f"running execution{'s' if limit != 1 else ''} (behavior {behavior})")
    if behavior == "CANCEL":
        store.change_execution_state(execution.id, State.CANCELLED)
    else:
        store.change_execution_state(execution.id, State.FAILED, error=message)
    log.info("execution %s: %s", execution.id, message)
    return False


def _free_stale_slots(store: ExecutionStore, app: Celery, key: str, limit: int) -> bool:
    """Give back slots of executions that ended without reaching the finisher
    (e.g. deleted, or lost with their worker); True if any was freed."""
    slots = slots_for(store)
    freed = False
    for execution_id in slots.running(key):
        try:
            ended = store.execution_state(execution_id).terminated
        except ExecutionNotFound:
            ended = True
        if ended:
            freed = True
            _start_queued(store, app, slots.release(key, execution_id, limit),
                          stored_flow_loader(store))
    return freed


def release_slot(store: ExecutionStore, app: Celery, execution_id: str,
                 flow: Flow | None = None, load_flow: FlowLoader | None = None) -> None:
    """The finisher's hook: the execution ended; start the next queued ones.
    Idempotent (the finisher may run more than once); a no-op without a limit."""
    load_flow = load_flow or stored_flow_loader(store)
    if flow is None:
        try:
            execution = store.get_execution(execution_id)
        except ExecutionNotFound:
            return
        flow = load_flow(execution.namespace, execution.flow_id, execution.flow_revision)
    if flow.concurrency is None:
        return
    slots = slots_for(store)
    started = slots.release(flow_key(flow.namespace, flow.id), execution_id,
                            flow.concurrency.limit)
    _start_queued(store, app, started, load_flow)


def _start_queued(store: ExecutionStore, app: Celery, execution_ids: list[str],
                  load_flow: FlowLoader) -> None:
    pending = list(execution_ids)
    while pending:
        execution_id = pending.pop(0)
        try:
            execution = store.get_execution(execution_id)
        except ExecutionNotFound:
            continue
        flow = load_flow(execution.namespace, execution.flow_id, execution.flow_revision)
        if execution.state.current not in (State.CREATED, State.QUEUED):
            # Killed while it waited: pass its slot on.
            if flow.concurrency is not None:
                pending.extend(slots_for(store).release(
                    flow_key(flow.namespace, flow.id), execution_id, flow.concurrency.limit))
            continue
        log.info("execution %s of %s.%s leaves the queue", execution_id, flow.namespace,
                 flow.id)
        ref = FlowRef(execution.namespace, execution.flow_id, execution.flow_revision)
        publish(start_messages(store, flow, ref, execution_id))
