"""Flow concurrency (`concurrency: {limit, behavior}`): an execution takes a
slot of its flow when it starts and gives it back when it ends; past the
limit it waits in a per-flow FIFO (QUEUE) or ends CANCELLED or FAILED.
Slots live in Redis (atomic Lua) in distributed mode, in memory embedded."""

from __future__ import annotations

import logging
import threading
import weakref
from collections import deque
from typing import TYPE_CHECKING, Literal, Protocol

import redis
from celery import Celery

from common.errors import ExecutionNotFound, HarrierError
from common.flow import Flow, parse_flow
from common.state import State
from common.store import ExecutionStore
from scheduler.compile import compile_flow

if TYPE_CHECKING:
    from common.execution import Execution
    from worker.runtime import Runtime

log = logging.getLogger("harrier.scheduler.concurrency")

Verdict = Literal["RUN", "QUEUED", "REJECTED"]

# A slot is held from admission until the finisher (or a kill) ends the execution.
_ADMIT = """
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1 then return 'RUN' end
local queueing = ARGV[3] == '1'
if redis.call('SCARD', KEYS[1]) < tonumber(ARGV[2])
   and (not queueing or redis.call('LLEN', KEYS[2]) == 0) then
  redis.call('SADD', KEYS[1], ARGV[1])
  return 'RUN'
end
if queueing then
  redis.call('RPUSH', KEYS[2], ARGV[1])
  return 'QUEUED'
end
return 'REJECTED'
"""

_RELEASE = """
redis.call('SREM', KEYS[1], ARGV[1])
local started = {}
while redis.call('SCARD', KEYS[1]) < tonumber(ARGV[2]) do
  local next_id = redis.call('LPOP', KEYS[2])
  if not next_id then break end
  redis.call('SADD', KEYS[1], next_id)
  table.insert(started, next_id)
end
return started
"""


class ConcurrencySlots(Protocol):
    def admit(self, flow_key: str, execution_id: str, limit: int, queue: bool) -> Verdict: ...
    # Frees the execution's slot; returns the queued executions that now hold one.
    def release(self, flow_key: str, execution_id: str, limit: int) -> list[str]: ...
    def running(self, flow_key: str) -> set[str]: ...


class RedisSlots:
    def __init__(self, client: redis.Redis, prefix: str = "harrier:concurrency") -> None:
        self.redis = client
        self.prefix = prefix
        self._admit = client.register_script(_ADMIT)
        self._release = client.register_script(_RELEASE)

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
    if isinstance(client, redis.Redis):
        return RedisSlots(client)
    with _memory_lock:
        slots = _memory_slots.get(store)
        if slots is None:
            slots = _memory_slots[store] = MemorySlots()
        return slots


def flow_key(namespace: str, flow_id: str) -> str:
    return f"{namespace}/{flow_id}"


def _installed_store() -> ExecutionStore | None:
    from worker.runtime import _current

    return _current.store if _current is not None else None


def admit_execution(app: Celery, flow: Flow, execution: Execution,
                    store: ExecutionStore | None) -> bool:
    """True if the execution may start now. Otherwise it is left QUEUED (started
    later by release_slot), CANCELLED or FAILED, per the flow's behavior."""
    assert flow.concurrency is not None
    store = store or _installed_store()
    if store is None:
        raise HarrierError(f"flow {flow.namespace}.{flow.id} has a concurrency limit: "
                           "start_execution needs the store (pass store=...)")
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
            _start_queued(store, app, slots.release(key, execution_id, limit), None)
    return freed


def release_slot(runtime: Runtime, execution_id: str, flow: Flow | None = None) -> None:
    """The finisher's hook: the execution ended; start the next queued ones.
    Idempotent (the finisher may run more than once); a no-op without a limit."""
    if flow is None:
        try:
            execution = runtime.store.get_execution(execution_id)
        except ExecutionNotFound:
            return
        flow = runtime.flow(execution.namespace, execution.flow_id, execution.flow_revision)
    if flow.concurrency is None:
        return
    slots = slots_for(runtime.store)
    started = slots.release(flow_key(flow.namespace, flow.id), execution_id,
                            flow.concurrency.limit)
    _start_queued(runtime.store, runtime.app, started, runtime)


def _start_queued(store: ExecutionStore, app: Celery, execution_ids: list[str],
                  runtime: Runtime | None) -> None:
    pending = list(execution_ids)
    while pending:
        execution_id = pending.pop(0)
        try:
            execution = store.get_execution(execution_id)
        except ExecutionNotFound:
            continue
        if runtime is not None:
            flow = runtime.flow(execution.namespace, execution.flow_id, execution.flow_revision)
        else:
            record = store.get_flow(execution.namespace, execution.flow_id,
                                    execution.flow_revision)
            flow = parse_flow(record.source, f"{execution.namespace}.{execution.flow_id}")
        if execution.state.current not in (State.CREATED, State.QUEUED):
            # Killed while it waited: pass its slot on.
            if flow.concurrency is not None:
                pending.extend(slots_for(store).release(
                    flow_key(flow.namespace, flow.id), execution_id, flow.concurrency.limit))
            continue
        log.info("execution %s of %s.%s leaves the queue", execution_id, flow.namespace,
                 flow.id)
        compile_flow(flow, execution_id).apply_async()
