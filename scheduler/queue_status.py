"""Worker groups as the broker sees them: for each Celery queue, how many
messages wait and how old the oldest one is (Redis broker: a list per queue,
oldest at the tail; the send time is the harrier_sent_at header)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from functools import lru_cache

import redis

from harrier.common.celery_app import SENT_AT_HEADER
from harrier.common.errors import FlowValidationError
from harrier.common.flow import parse_flow
from harrier.common.store import ExecutionStore


@dataclass(frozen=True)
class QueueStatus:
    name: str
    length: int
    oldest_age: float | None  # seconds; None when empty or the age is unknown


def queue_status(client: redis.Redis, queues: list[str],
                 now: float | None = None) -> list[QueueStatus]:
    """One round trip for every queue's length and its oldest message."""
    if not queues:
        return []
    moment = time.time() if now is None else now
    pipe = client.pipeline(transaction=False)
    for name in queues:
        pipe.llen(name)
        pipe.lindex(name, -1)
    replies = pipe.execute()
    found = []
    for position, name in enumerate(queues):
        length, oldest = replies[2 * position], replies[2 * position + 1]
        found.append(QueueStatus(name, int(length), _age(oldest, moment)))
    return found


def _age(raw: bytes | None, now: float) -> float | None:
    if raw is None:
        return None
    try:
        sent = json.loads(raw).get("headers", {}).get(SENT_AT_HEADER)
    except (ValueError, AttributeError):
        return None
    return max(0.0, now - float(sent)) if isinstance(sent, (int, float)) else None


def flow_worker_groups(store: ExecutionStore) -> set[str]:
    """Queues named by the stored flows' workerGroup keys (a group may have
    messages waiting and no worker yet: what an autoscaler must see)."""
    groups: set[str] = set()
    for record in store.list_flows():
        groups |= _groups_of(record.namespace, record.flow_id, record.revision, record.source)
    return groups


@lru_cache(maxsize=4096)
def _groups_of(namespace: str, flow_id: str, revision: int, source: str) -> frozenset[str]:
    # A revision never changes: parsed once per process.
    try:
        flow = parse_flow(source, f"{namespace}.{flow_id}@{revision}")
    except FlowValidationError:
        return frozenset()
    return frozenset(task.worker_group.key for task in flow.all_tasks()
                     if task.worker_group is not None)
