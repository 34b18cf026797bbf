"""/api/v1/triggers: a flow's triggers with their state, enabling and disabling
them at run time, and backfilling a Schedule trigger (Kestra's paths)."""

from __future__ import annotations

import os
import socket
from datetime import datetime
from typing import Any

import redis
from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from harrier.common.errors import FlowNotFound
from harrier.scheduler.api.auth import require_auth
from harrier.scheduler.api.context import ApiContext, Ctx
from harrier.scheduler.api.errors import ApiError
from harrier.scheduler.backfill import BackfillError
from harrier.scheduler.firing import FireContext
from harrier.scheduler.flow_catalog import trigger_key_text
from harrier.scheduler.trigger_view import (
    TriggerNotFound,
    find_trigger,
    run_backfill,
    trigger_views,
)

router = APIRouter(prefix="/triggers", tags=["triggers"], dependencies=[Depends(require_auth)])


class TriggerRef(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)
    namespace: str = Field(max_length=1000)
    flow_id: str = Field(alias="flowId", max_length=1000)
    trigger_id: str = Field(alias="triggerId", max_length=1000)


class SetDisabledRequest(BaseModel):
    triggers: list[TriggerRef] = Field(max_length=1000)
    disabled: bool


class BackfillRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    start: datetime
    end: datetime | None = None
    inputs: dict[str, Any] = Field(default_factory=dict)
    labels: dict[str, str] = Field(default_factory=dict)


class TriggerUpdate(TriggerRef):
    backfill: BackfillRequest | None = None


@router.get("/{namespace}/{flow_id}", summary="A flow's triggers and their state")
def flow_triggers(namespace: str, flow_id: str, ctx: Ctx) -> dict[str, Any]:
    flow = ctx.flow(namespace, flow_id)
    results = [v.to_json() for v in trigger_views([flow], ctx.triggers, ctx.store)]
    return {"results": results, "total": len(results)}


@router.post("/set-disabled/by-triggers", summary="Disable or enable triggers")
def set_disabled(body: SetDisabledRequest, ctx: Ctx) -> dict[str, int]:
    keys = []
    for ref in body.triggers:
        flow = ctx.flow(ref.namespace, ref.flow_id)  # unknown flow: 404
        try:
            find_trigger(flow, ref.trigger_id)
        except TriggerNotFound as exc:
            raise ApiError(404, str(exc)) from None
        keys.append(trigger_key_text((ref.namespace, ref.flow_id, ref.trigger_id)))
    ctx.triggers.set_disabled(keys, body.disabled)
    return {"count": len(keys)}


@router.put("", summary="Update a trigger: start a backfill of its past ticks")
async def update_trigger(body: TriggerUpdate, ctx: Ctx) -> dict[str, Any]:
    return await run_in_threadpool(_update, ctx, body)


def fire_context(ctx: ApiContext) -> FireContext:
    client = getattr(ctx.store, "redis", None)
    if not isinstance(client, redis.Redis):
        raise ApiError(409, "backfills need the Redis store (set HARRIER_BROKER_URL): tick "
                       "claims keep them exactly-once")
    return FireContext(ctx.store, ctx.celery_app, client,
                       replica=f"api:{socket.gethostname()}:{os.getpid()}",
                       secrets=ctx.settings.secrets)


def _update(ctx: ApiContext, body: TriggerUpdate) -> dict[str, Any]:
    try:
        flow = ctx.flow(body.namespace, body.flow_id)
    except FlowNotFound as exc:
        raise ApiError(404, str(exc)) from None
    try:
        trigger = find_trigger(flow, body.trigger_id)
    except TriggerNotFound as exc:
        raise ApiError(404, str(exc)) from None
    view = trigger_views([flow], ctx.triggers, ctx.store)
    data = next(v for v in view if v.trigger.id == trigger.id).to_json()
    if body.backfill is None:
        return data
    request = body.backfill
    end = request.end or datetime.now(request.start.tzinfo)
    try:
        result = run_backfill(fire_context(ctx), flow, trigger, request.start, end,
                              inputs=request.inputs, labels=request.labels)
    except BackfillError as exc:
        raise ApiError(422, str(exc)) from None
    data["backfill"] = {"start": request.start.isoformat(), "end": end.isoformat(),
                        "executions": result.executions,
                        "alreadyFired": result.already_fired}
    return data
