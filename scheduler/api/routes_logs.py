"""/api/v1/logs: an execution's log entries as JSON, as a text download, and
live as Server-Sent Events."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query
from fastapi.responses import PlainTextResponse, StreamingResponse

from harrier.common.execution import LogEntry
from harrier.common.state import iso
from harrier.common.store import ExecutionStore
from harrier.scheduler.api.auth import require_auth
from harrier.scheduler.api.context import Ctx
from harrier.scheduler.api.errors import ApiError
from harrier.scheduler.api.sse import follow_logs

router = APIRouter(prefix="/logs", tags=["logs"], dependencies=[Depends(require_auth)])

LEVELS = ("TRACE", "DEBUG", "INFO", "WARN", "ERROR")
_PAGE = 1000
_ENTRY_ID = re.compile(r"[0-9]{1,20}(-[0-9]{1,20})?")


def levels_from(min_level: str | None) -> frozenset[str] | None:
    if not min_level:
        return None
    name = min_level.strip().upper()
    name = "WARN" if name == "WARNING" else name
    if name not in LEVELS:
        raise ApiError(400, f"minLevel: expected one of {', '.join(LEVELS)}, got {min_level!r}")
    return frozenset(LEVELS[LEVELS.index(name):])


def all_logs(store: ExecutionStore, execution_id: str) -> list[LogEntry]:
    entries: list[LogEntry] = []
    after: str | None = None
    while True:
        page = store.read_logs(execution_id, after, limit=_PAGE)
        entries.extend(page)
        if len(page) < _PAGE:
            return entries
        after = page[-1].id


def _selected(ctx: Ctx, execution_id: str, task_run_id: str | None,
              min_level: str | None) -> list[LogEntry]:
    levels = levels_from(min_level)
    ctx.store.execution_state(execution_id)  # unknown execution: 404
    return [e for e in all_logs(ctx.store, execution_id)
            if (levels is None or e.level in levels)
            and (task_run_id is None or e.task_run_id == task_run_id)]


def text_line(entry: LogEntry) -> str:
    return f"{iso(entry.timestamp)} {entry.level} [{entry.task_id or 'execution'}] " \
           f"{entry.message}"


@router.get("/{execution_id}", summary="An execution's log entries")
def list_logs(
    execution_id: str, ctx: Ctx,
    task_run_id: Annotated[str | None, Query(alias="taskRunId")] = None,
    min_level: Annotated[str | None, Query(alias="minLevel")] = None,
) -> list[dict[str, Any]]:
    return [e.to_json() for e in _selected(ctx, execution_id, task_run_id, min_level)]


@router.get("/{execution_id}/download", summary="An execution's logs as text",
            response_class=PlainTextResponse)
def download_logs(
    execution_id: str, ctx: Ctx,
    task_run_id: Annotated[str | None, Query(alias="taskRunId")] = None,
    min_level: Annotated[str | None, Query(alias="minLevel")] = None,
) -> PlainTextResponse:
    lines = [text_line(e) for e in _selected(ctx, execution_id, task_run_id, min_level)]
    return PlainTextResponse("".join(line + "\n" for line in lines), headers={
        "Content-Disposition": f'attachment; filename="{execution_id}.log"'})


@router.get("/{execution_id}/follow", summary="Follow an execution's logs (SSE)",
            responses={200: {"content": {"text/event-stream": {}}}})
def follow(
    execution_id: str, ctx: Ctx,
    min_level: Annotated[str | None, Query(alias="minLevel")] = None,
    last_event_id: Annotated[str | None, Header()] = None,
    after: Annotated[str | None, Query(alias="lastEventId", max_length=64)] = None,
) -> StreamingResponse:
    """Every entry so far (or after Last-Event-ID), then live ones, until the
    execution ends (an `end` event). `?lastEventId=` starts after an entry the
    client already has (a browser's EventSource cannot send the header at first)."""
    levels = levels_from(min_level)
    ctx.store.execution_state(execution_id)
    start = last_event_id or after or None
    if start is not None and not _ENTRY_ID.fullmatch(start):
        raise ApiError(400, f"Last-Event-ID: expected a log entry id such as "
                       f"1700000000000-0, got {start[:64]!r}")
    return StreamingResponse(follow_logs(ctx.store, execution_id, start, levels),
                             media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache"})
