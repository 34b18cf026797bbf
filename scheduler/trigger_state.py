"""Triggers switched off at run time (Kestra's trigger enable/disable), apart
from the flow's YAML: a set of trigger keys every scheduler replica and the API
read. In Redis when the store is Redis; in memory for embedded mode."""

from __future__ import annotations

import threading
from typing import Protocol

import redis

from harrier.common.errors import StoreUnavailable
from harrier.common.store import ExecutionStore

DISABLED_KEY = "harrier:triggers:disabled"  # set of "namespace/flowId/triggerId"


class TriggerStates(Protocol):
    def disabled_keys(self) -> frozenset[str]: ...
    def set_disabled(self, keys: list[str], disabled: bool) -> None: ...


class MemoryTriggerStates:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._disabled: set[str] = set()

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
