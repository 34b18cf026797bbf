"""Server-Sent Events: live log entries and execution changes, read from the
store in worker threads (the store is synchronous) until the execution ends."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import anyio
from anyio import to_thread

from harrier.common.errors import ExecutionNotFound, StoreUnavailable
from harrier.common.execution import LogEntry
from harrier.common.store import ExecutionStore

# How long one blocking log read waits; also how often the end is checked.
_BLOCK_SECONDS = 1.0
_POLL_SECONDS = 0.25
_KEEPALIVE_EVERY = 15  # idle reads between comment lines that keep proxies from closing


def _read(store: ExecutionStore, execution_id: str, after: str | None,
          block: float | None) -> list[LogEntry]:
    return store.read_logs(execution_id, after, block=block)


def event(data: Any, *, name: str | None = None, event_id: str | None = None) -> str:
    lines = []
    if event_id is not None:
        lines.append(f"id: {event_id}")
    if name is not None:
        lines.append(f"event: {name}")
    text = json.dumps(data, default=str)
    lines.append(f"data: {text}")
    return "\n".join(lines) + "\n\n"


async def follow_logs(store: ExecutionStore, execution_id: str, after: str | None,
                      levels: frozenset[str] | None = None) -> AsyncIterator[str]:
    """Each log entry as an event whose id is its store id (so a reconnecting
    EventSource resumes with Last-Event-ID), then an `end` event."""
    idle = 0
    try:
        while True:
            entries = await to_thread.run_sync(_read, store, execution_id, after, _BLOCK_SECONDS)
            for entry in entries:
                after = entry.id
                if levels is None or entry.level in levels:
                    yield event(entry.to_json(), event_id=entry.id)
            if entries:
                idle = 0
                continue
            state = await to_thread.run_sync(store.execution_state, execution_id)
            if state.terminated:
                # Entries written between the last read and the end.
                for entry in await to_thread.run_sync(_read, store, execution_id, after, None):
                    if levels is None or entry.level in levels:
                        yield event(entry.to_json(), event_id=entry.id)
                yield event({"executionId": execution_id, "state": state.value}, name="end")
                return
            idle += 1
            if idle % _KEEPALIVE_EVERY == 0:
                yield ": keep-alive\n\n"
    except (StoreUnavailable, ExecutionNotFound) as exc:
        yield event({"message": str(exc)}, name="error")


async def follow_execution(store: ExecutionStore, execution_id: str) -> AsyncIterator[str]:
    """The execution JSON each time it changes; the last one is terminal."""
    last: dict[str, Any] | None = None
    idle = 0
    try:
        while True:
            execution = await to_thread.run_sync(store.get_execution, execution_id)
            data = execution.to_json()
            if data != last:
                last = data
                idle = 0
                yield event(data)
            if execution.state.current.terminated:
                yield event({"executionId": execution_id,
                             "state": execution.state.current.value}, name="end")
                return
            idle += 1
            if idle % (_KEEPALIVE_EVERY * 4) == 0:
                yield ": keep-alive\n\n"
            await anyio.sleep(_POLL_SECONDS)
    except (StoreUnavailable, ExecutionNotFound) as exc:
        yield event({"message": str(exc)}, name="error")
