"""The scheduler's view of every flow: YAML files under the flows directory
(pushed into the store) plus flows pushed through the API, re-read when they
change. An invalid file is logged with its file:line and skipped."""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import redis

from harrier.common.errors import FlowValidationError, HarrierError
from harrier.common.flow import Flow, parse_flow
from harrier.common.store import ExecutionStore
from harrier.common.triggers import FlowTrigger, ScheduleTrigger

log = logging.getLogger("harrier.scheduler.catalog")

TriggerKey = tuple[str, str, str]  # (namespace, flow id, trigger id)
DIRECTORY_ORIGIN_KEY = "harrier:catalog:directory_flows"  # hash: "ns\0id" -> sha1(source)


@dataclass(frozen=True)
class ScheduledTrigger:
    """One enabled Schedule trigger of one enabled flow, as the loop needs it."""

    flow: Flow
    trigger: ScheduleTrigger

    @property
    def key(self) -> TriggerKey:
        return self.flow.namespace, self.flow.id, self.trigger.id


def trigger_key_text(key: TriggerKey) -> str:
    """The spelling of a trigger key in Redis claims and last-fired records."""
    return "/".join(key)


def _digest(source: str) -> str:
    return hashlib.sha1(source.encode("utf-8")).hexdigest()


class DirectoryOrigins(Protocol):
    """Which store flows came from a flows directory (source digest per flow), so a
    file removed from the directory stops firing even across restarts, while a
    flow pushed through the API keeps firing."""

    def mark(self, namespace: str, flow_id: str, source: str) -> None: ...
    def digests(self) -> dict[tuple[str, str], str]: ...


class MemoryOrigins:
    def __init__(self) -> None:
        self._digests: dict[tuple[str, str], str] = {}

    def mark(self, namespace: str, flow_id: str, source: str) -> None:
        self._digests[(namespace, flow_id)] = _digest(source)

    def digests(self) -> dict[tuple[str, str], str]:
        return dict(self._digests)


class RedisOrigins:
    def __init__(self, client: redis.Redis) -> None:
        self.redis = client

    def mark(self, namespace: str, flow_id: str, source: str) -> None:
        self.redis.hset(DIRECTORY_ORIGIN_KEY, f"{namespace}\x00{flow_id}", _digest(source))

    def digests(self) -> dict[tuple[str, str], str]:
        found: dict[tuple[str, str], str] = {}
        for raw_key, raw_value in self.redis.hgetall(DIRECTORY_ORIGIN_KEY).items():
            namespace, _, flow_id = _text(raw_key).partition("\x00")
            found[(namespace, flow_id)] = _text(raw_value)
        return found


def _text(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw


def origins_for(store: ExecutionStore) -> DirectoryOrigins:
    client = getattr(store, "redis", None)  # RedisStore: shared by every replica
    return RedisOrigins(client) if isinstance(client, redis.Redis) else MemoryOrigins()


@dataclass
class _LoadedFile:
    stamp: tuple[int, int]  # (mtime_ns, size): cheap change detection
    flow: Flow | None  # None: invalid, already reported


class FlowCatalog:
    """Call refresh() periodically (it does the I/O; ~a stat per file when
    nothing changed); read schedules() and version from any thread."""

    def __init__(self, flows_dir: Path | None, store: ExecutionStore, *,
                 origins: DirectoryOrigins | None = None,
                 store_poll_seconds: float = 2.0) -> None:
        self.flows_dir = flows_dir
        self.store = store
        self.origins = origins if origins is not None else origins_for(store)
        self.store_poll_seconds = store_poll_seconds
        self._files: dict[Path, _LoadedFile] = {}
        self._store_flows: dict[tuple[str, str], tuple[int, Flow | None]] = {}
        self._last_store_poll = float("-inf")
        self._lock = threading.Lock()
        self._schedules: dict[TriggerKey, ScheduledTrigger] = {}
        self._flows: dict[tuple[str, str], Flow] = {}
        self._flow_triggers: list[tuple[Flow, FlowTrigger]] = []
        self.version = 0  # bumps whenever schedules() changes

    # -- reading (any thread)
    def schedules(self) -> dict[TriggerKey, ScheduledTrigger]:
        """Every enabled Schedule trigger of every enabled flow, by trigger key."""
        with self._lock:
            return dict(self._schedules)

    def flow_triggers(self) -> list[tuple[Flow, FlowTrigger]]:
        """Every enabled Flow trigger of every enabled flow, with its flow."""
        with self._lock:
            return list(self._flow_triggers)

    def flow(self, namespace: str, flow_id: str) -> Flow | None:
        with self._lock:
            return self._flows.get((namespace, flow_id))

    # -- refreshing (one thread)
    def refresh(self, now_monotonic: float | None = None) -> bool:
        """Re-read what changed; True if the set of schedules changed."""

        moment = time.monotonic() if now_monotonic is None else now_monotonic
        directory_changed = self._scan_directory()
        store_changed = False
        if directory_changed or moment - self._last_store_poll >= self.store_poll_seconds:
            self._last_store_poll = moment
            store_changed = self._poll_store()
        if not (directory_changed or store_changed):
            return False
        return self._rebuild()

    def _flow_files(self) -> Iterator[Path]:
        if self.flows_dir is None or not self.flows_dir.is_dir():
            return
        for root, dirs, files in os.walk(self.flows_dir):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in sorted(files):
                if name.endswith((".yaml", ".yml")) and not name.startswith("."):
                    yield Path(root) / name

    def _scan_directory(self) -> bool:
        seen: set[Path] = set()
        changed = False
        for path in self._flow_files():
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue  # removed while we walked
            seen.add(path)
            stamp = (stat.st_mtime_ns, stat.st_size)
            loaded = self._files.get(path)
            if loaded is not None and loaded.stamp == stamp:
                continue
            flow = self._load_file(path)
            if flow is None and loaded is not None and loaded.flow is not None:
                log.error("%s: keeping its last valid version of flow %s.%s until the file "
                          "is fixed", path, loaded.flow.namespace, loaded.flow.id)
                flow = loaded.flow
            self._files[path] = _LoadedFile(stamp, flow)
            changed = True
        for path in set(self._files) - seen:
            log.info("flow file %s removed: its triggers stop", path)
            del self._files[path]
            changed = True
        return changed

    def _load_file(self, path: Path) -> Flow | None:
        try:
            text = path.read_text(encoding="utf-8")
            flow = parse_flow(text, str(path))
        except FlowValidationError as exc:
            log.error("invalid flow file skipped:\n%s", exc)
            return None
        except (OSError, UnicodeDecodeError) as exc:
            log.error("cannot read flow file %s, skipped: %s", path, exc)
            return None
        try:
            self.store.put_flow(flow.namespace, flow.id, flow.source)
            self.origins.mark(flow.namespace, flow.id, flow.source)
        except (HarrierError, redis.RedisError) as exc:
            log.error("cannot push flow %s.%s from %s to the store: %s", flow.namespace,
                      flow.id, path, exc)
        log.info("loaded flow %s.%s from %s", flow.namespace, flow.id, path)
        return flow

    def _poll_store(self) -> bool:
        try:
            records = self.store.list_flows()
        except (HarrierError, redis.RedisError) as exc:
            log.warning("cannot list flows in the store (keeping the last known ones): %s",
                        exc)
            return False
        changed = False
        current: dict[tuple[str, str], tuple[int, Flow | None]] = {}
        # Most store flows came from our own files: reuse those parses (YAML is the cost).
        parsed = {(f.flow.key, f.flow.source): f.flow for f in self._files.values()
                  if f.flow is not None}
        for record in records:
            key = (record.namespace, record.flow_id)
            known = self._store_flows.get(key)
            if known is not None and known[0] == record.revision:
                current[key] = known
                continue
            changed = True
            flow: Flow | None = parsed.get((key, record.source))
            if flow is not None:
                current[key] = (record.revision, flow)
                continue
            try:
                flow = parse_flow(record.source, f"{key[0]}.{key[1]}"
                                               f"@{record.revision}")
            except FlowValidationError as exc:
                log.error("invalid flow in the store skipped:\n%s", exc)
                flow = None
            current[key] = (record.revision, flow)
        changed = changed or set(current) != set(self._store_flows)
        self._store_flows = current
        return changed

    def _rebuild(self) -> bool:
        flows: dict[tuple[str, str], Flow] = {}
        directory_keys: set[tuple[str, str]] = set()
        for path in sorted(self._files):
            flow = self._files[path].flow
            if flow is None:
                continue
            if flow.key in flows:
                log.error("%s defines flow %s.%s again; keeping the first file", path,
                          flow.namespace, flow.id)
                continue
            flows[flow.key] = flow
            directory_keys.add(flow.key)
        try:
            from_directory = self.origins.digests()
        except redis.RedisError as exc:
            log.warning("cannot read flow origins: %s", exc)
            from_directory = {}
        for key, (_, flow) in self._store_flows.items():
            if flow is None or key in directory_keys:
                continue
            if from_directory.get(key) == _digest(flow.source):
                continue  # came from a flows directory and its file is gone here
            flows[key] = flow
        schedules: dict[TriggerKey, ScheduledTrigger] = {}
        flow_triggers: list[tuple[Flow, FlowTrigger]] = []
        for flow in flows.values():
            if flow.disabled or flow.deleted:
                continue
            flow_triggers.extend((flow, t) for t in flow.triggers_of(FlowTrigger)
                                 if isinstance(t, FlowTrigger))
            for trigger in flow.triggers_of(ScheduleTrigger):
                assert isinstance(trigger, ScheduleTrigger)
                entry = ScheduledTrigger(flow, trigger)
                schedules[entry.key] = entry
        with self._lock:
            changed = schedules != self._schedules
            self._schedules = schedules
            self._flows = flows
            self._flow_triggers = flow_triggers
            if changed:
                self.version += 1
        return changed
