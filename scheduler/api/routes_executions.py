"""/api/v1/executions: create (form or JSON inputs), get, search, kill,
restart, resume, delete and follow executions, with Kestra's paths and JSON."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated, Any, BinaryIO
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from harrier.common.errors import StorageError
from harrier.common.state import State
from harrier.common.storage import belongs_to_execution, execution_prefix, storage_for
from harrier.common.store import ExecutionQuery
from harrier.scheduler.api.auth import require_auth
from harrier.scheduler.api.context import Ctx
from harrier.scheduler.api.errors import ApiError
from harrier.scheduler.api.launch import launch, resume_with_files
from harrier.scheduler.api.request_inputs import (
    check_body_type,
    inputs_from_form,
    inputs_from_json,
    is_form,
    parse_labels,
)
from harrier.scheduler.api.sse import follow_execution
from harrier.scheduler.control import kill_execution, restart_execution

router = APIRouter(prefix="/executions", tags=["executions"],
                   dependencies=[Depends(require_auth)])

_INPUTS_BODY = {"requestBody": {"required": False, "content": {
    "multipart/form-data": {"schema": {"type": "object", "additionalProperties": {
        "type": "string", "format": "binary"}}},
    "application/json": {"schema": {"type": "object", "additionalProperties": True}},
}}}


def _parse_time(text: str | None, name: str) -> datetime | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(400, f"{name}: expected an ISO-8601 date-time such as "
                       f"2024-01-31T10:00:00Z, got {text!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _parse_states(values: list[str]) -> tuple[State, ...]:
    names = [part.strip().upper() for value in values for part in value.split(",")
             if part.strip()]
    bad = [name for name in names if name not in State.__members__]
    if bad:
        known = ", ".join(State.__members__)
        raise ApiError(400, f"unknown state {', '.join(bad)}; known states: {known}")
    return tuple(State(name) for name in names)


@router.get("/search", summary="Search executions")
@router.get("", summary="Search executions (same as /search)")
def search_executions(
    ctx: Ctx,
    namespace: str | None = None,
    flow_id: Annotated[str | None, Query(alias="flowId")] = None,
    state: Annotated[list[str] | None, Query()] = None,
    start_date: Annotated[str | None, Query(alias="startDate")] = None,
    end_date: Annotated[str | None, Query(alias="endDate")] = None,
    labels: Annotated[list[str] | None, Query()] = None,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    size: Annotated[int, Query(ge=1, le=1000)] = 25,
) -> dict[str, Any]:
    """Newest first; `labels=key:value` (repeatable) keeps executions having all of them."""
    query = ExecutionQuery(
        namespace=namespace or None, flow_id=flow_id or None,
        states=_parse_states(state or []),
        start_after=_parse_time(start_date, "startDate"),
        start_before=_parse_time(end_date, "endDate"),
        labels=tuple(parse_labels(labels or []).items()),
        limit=size, offset=(page - 1) * size)
    found, total = ctx.store.search_executions(query)
    return {"results": [e.to_json() for e in found], "total": total}


@router.get("/{execution_id}", summary="Get an execution")
def get_execution(execution_id: str, ctx: Ctx) -> dict[str, Any]:
    return ctx.store.get_execution(execution_id).to_json()


@router.get("/{execution_id}/follow", summary="Follow an execution's changes (SSE)",
            responses={200: {"content": {"text/event-stream": {}}}})
def follow(execution_id: str, ctx: Ctx) -> StreamingResponse:
    ctx.store.execution_state(execution_id)  # 404 before the stream starts
    return StreamingResponse(follow_execution(ctx.store, execution_id),
                             media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache"})


@router.delete("/{execution_id}/kill", status_code=202, summary="Kill an execution")
def kill(execution_id: str, ctx: Ctx) -> JSONResponse:
    execution = kill_execution(ctx.store, execution_id, app=ctx.celery_app,
                               settings=ctx.settings)
    return JSONResponse(execution.to_json(), status_code=202)


@router.post("/{execution_id}/restart", summary="Restart a failed or killed execution")
def restart(execution_id: str, ctx: Ctx) -> dict[str, Any]:
    return restart_execution(ctx.store, ctx.celery_app, execution_id,
                             settings=ctx.settings).to_json()


@router.post("/{execution_id}/resume", summary="Resume a paused execution",
             openapi_extra=_INPUTS_BODY)
async def resume(execution_id: str, request: Request, ctx: Ctx) -> JSONResponse:
    """The Pause tasks' `onResume` inputs as multipart/form-data fields (as
    Kestra's UI and client send them; files for FILE inputs) or a JSON object;
    409 if not paused."""
    content_type = request.headers.get("content-type", "")
    if is_form(content_type):
        async with request.form() as form:
            given, uploads = inputs_from_form(form)
            execution = await run_in_threadpool(
                lambda: resume_with_files(ctx, execution_id, given, uploads))
    else:
        body = await request.body()
        check_body_type(content_type, body)
        given = inputs_from_json(body)
        execution = await run_in_threadpool(
            lambda: resume_with_files(ctx, execution_id, given, []))
    return JSONResponse(execution.to_json())


@router.delete("/{execution_id}", status_code=204, summary="Delete an ended execution")
def delete(execution_id: str, ctx: Ctx) -> Response:
    state = ctx.store.execution_state(execution_id)
    if not state.terminated:
        raise ApiError(409, f"execution {execution_id} is {state}; kill it before deleting")
    execution = ctx.store.get_execution(execution_id)
    ctx.store.delete_execution(execution_id)
    storage_for(ctx.settings.storage_root).delete_prefix(
        execution_prefix(execution.namespace, execution.flow_id, execution.id))
    return Response(status_code=204)


@router.get("/{execution_id}/file", summary="Download a file of an execution")
def download_file(execution_id: str, ctx: Ctx,
                  path: Annotated[str, Query(max_length=4096)]) -> StreamingResponse:
    """`path` is a kestra:// URI of this execution (an outputFiles value, a
    Download's uri, a FILE input)."""
    execution = ctx.store.get_execution(execution_id)
    try:
        inside = belongs_to_execution(path, execution.namespace, execution.flow_id,
                                      execution.id)
    except StorageError as exc:
        raise ApiError(422, str(exc)) from None
    if not inside:
        raise ApiError(404, f"{path} is not a file of execution {execution_id}")
    storage = storage_for(ctx.settings.storage_root)
    try:
        size, stream = storage.size(path), storage.open(path)
    except StorageError as exc:
        raise ApiError(404, str(exc)) from None
    name = path.rsplit("/", 1)[-1]
    return StreamingResponse(_chunks(stream), media_type="application/octet-stream", headers={
        "Content-Length": str(size),
        "Content-Disposition": f"attachment; filename*=UTF-8''{quote(name)}"})


def _chunks(stream: BinaryIO) -> Iterator[bytes]:
    with stream:
        while chunk := stream.read(1024 * 1024):
            yield chunk


@router.post("/trigger/{namespace}/{flow_id}", include_in_schema=False,
             openapi_extra=_INPUTS_BODY)
@router.post("/{namespace}/{flow_id}", summary="Create and start an execution",
             openapi_extra=_INPUTS_BODY)
async def create(
    namespace: str, flow_id: str, request: Request, ctx: Ctx,
    labels: Annotated[list[str] | None, Query()] = None,
    wait: bool = False,
) -> JSONResponse:
    """Inputs as multipart/form-data fields (files for FILE inputs) or a JSON
    object; `labels=key:value` (repeatable); `wait=true` answers at the end."""
    label_map = parse_labels(labels or [])
    trigger = {"type": "api", "id": "api"}
    content_type = request.headers.get("content-type", "")
    if is_form(content_type):
        async with request.form() as form:
            given, uploads = inputs_from_form(form)
            flow = await run_in_threadpool(ctx.flow, namespace, flow_id)
            execution = await run_in_threadpool(
                lambda: launch(ctx, flow, given, trigger=trigger, labels=label_map,
                               uploads=uploads, wait=wait))
    else:
        body = await request.body()
        check_body_type(content_type, body)
        given = inputs_from_json(body)
        flow = await run_in_threadpool(ctx.flow, namespace, flow_id)
        execution = await run_in_threadpool(
            lambda: launch(ctx, flow, given, trigger=trigger, labels=label_map, wait=wait))
    return JSONResponse(execution.to_json())
