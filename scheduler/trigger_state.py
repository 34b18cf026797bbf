"""Triggers switched off at run time (Kestra's trigger enable/disable), apart
from the flow's YAML: a set of trigger keys every scheduler replica and the API
read. In Redis when the store is Redis; in memory for embedded mode."""

from __future__ import annotations

import logging
import threading
from typing import Protocol

import redis

from harrier.common.errors import ExecutionNotFound, StoreUnavailable
from harrier.common.store import ExecutionStore
from harrier.common.triggers import Trigger

log = logging.getLogger("harrier.scheduler.triggers")

DISABLED_KEY = "harrier:triggers:disabled"  # set of "namespace/flowId/triggerId"
LAST_EXECUTION_KEY = "harrier:triggers:last-execution"  # hash: trigger key -> execution id


class TriggerStates(Protocol):
    def disabled_keys(self) -> frozenset[str]: ...
    def set_disabled(self, keys: list[str], disabled: bool) -> None: ...
    # The last execution a trigger with `stopAfter` created (see stopped_after).
    def last_execution(self, key: str) -> str | None: ...
    def set_last_execution(self, key: str, execution_id: str) -> None: ...


def stopped_after(states: TriggerStates, store: ExecutionStore, key: str,
                  trigger: Trigger) -> bool:
    """Kestra's `stopAfter`: once an execution the trigger created ends in one of
    those states, the trigger is disabled (as from the UI). Checked when the
    trigger would fire next; True when it is (now) disabled."""
    if not trigger.stop_after:
        return False
    last = states.last_execution(key)
    if last is None:
        return False
    try:
        state = store.execution_state(last)
    except ExecutionNotFound:
        return False
    if state not in trigger.stop_after:
        return False
    states.set_disabled([key], True)
    log.warning("trigger %s disabled: its execution %s ended %s (stopAfter)", key, last,
                state.value)
    return True


class MemoryTriggerStates:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._disabled: set[str] = set()
        self._last: dict[str, str] = {}

    def last_execution(self, key: str) -> str | None:
        with self._lock:
            return self._last.get(key)

    def set_last_execution(self, key: str, execution_id: str) -> None:
        with self._lock:
            self._last[key] = execution_id

    def disabled_keys(self) -> frozenset[str]:
        with self._lock:
            return frozenset(self._disabled)

    def set_disabled(self, keys: list[str], disabled: bool) -> None:
        with self._lock:
            if disabled:
                self._disabled.update(keys)
            else:
                self._disabled.difference_update(keys)


class RedisTriggerStates:
    def __init__(self, client: redis.Redis) -> None:
        self.redis = client

    def last_execution(self, key: str) -> str | None:
        try:
            value = self.redis.hget(LAST_EXECUTION_KEY, key)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise StoreUnavailable(f"cannot read the trigger's last execution: {exc}") from exc
        return value.decode() if isinstance(value, bytes) else value

    def set_last_execution(self, key: str, execution_id: str) -> None:
        try:
            self.redis.hset(LAST_EXECUTION_KEY, key, execution_id)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise StoreUnavailable(f"cannot record the trigger's execution: {exc}") from exc

    def disabled_keys(self) -> frozenset[str]:
        try:
            members = self.redis.smembers(DISABLED_KEY)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise StoreUnavailable(f"cannot read disabled triggers: {exc}") from exc
        return frozenset(m.decode() if isinstance(m, bytes) else str(m) for m in members)

    def set_disabled(self, keys: list[str], disabled: bool) -> None:
        if not keys:
            return
        try:
            if disabled:
                self.redis.sadd(DISABLED_KEY, *keys)
            else:
                self.redis.srem(DISABLED_KEY, *keys)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise StoreUnavailable(f"cannot change disabled triggers: {exc}") from exc


def trigger_states_for(store: ExecutionStore) -> TriggerStates:
    client = getattr(store, "redis", None)  # RedisStore: shared by every replica
    return RedisTriggerStates(client) if isinstance(client, redis.Redis) else \
        MemoryTriggerStates()
