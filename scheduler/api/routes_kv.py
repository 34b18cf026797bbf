"""/api/v1/namespaces/{namespace}/kv: Kestra's KV API (list keys, read a
typed value, put a value with `ttl` and `description` headers, delete one or
many keys). Followed: Kestra's KVController."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from harrier.common.durations import parse_duration
from harrier.common.kv import (
    MAX_KEYS_LISTED,
    MAX_VALUE_BYTES,
    check_key,
    check_namespace,
    kv_type,
    new_entry,
)
from harrier.scheduler.api.auth import require_auth
from harrier.scheduler.api.context import Ctx
from harrier.scheduler.api.errors import ApiError

router = APIRouter(prefix="/namespaces/{namespace}/kv", tags=["KV"],
                   dependencies=[Depends(require_auth)])


class DeleteKeys(BaseModel):
    keys: list[str] = []


@router.get("", summary="List all keys for a namespace")
def list_keys(namespace: str, ctx: Ctx) -> list[dict[str, Any]]:
    entries = ctx.store.kv_list(check_namespace(namespace))
    return [e.to_json() for e in entries[:MAX_KEYS_LISTED]]


@router.get("/{key}", summary="Get value for a key")
def get_value(namespace: str, key: str, ctx: Ctx) -> dict[str, Any]:
    entry = ctx.store.kv_get(check_namespace(namespace), check_key(key))
    if entry is None:
        raise ApiError(404, f"No value found for key '{key}' in namespace '{namespace}'")
    return {"type": entry.type or kv_type(entry.value), "value": entry.value}


@router.put("/{key}", status_code=204, summary="Puts a key-value pair in store",
            openapi_extra={"requestBody": {"content": {
                "application/json": {"schema": {}}, "text/plain": {"schema": {"type": "string"}}}}})
async def put_value(namespace: str, key: str, request: Request, ctx: Ctx) -> None:
    """The body is the value: JSON (`"text"`, `42`, `{"a": 1}`), or bare text
    taken as a string. Headers: `ttl` (ISO-8601 duration), `description`."""
    check_namespace(namespace)
    check_key(key)
    body = await request.body()
    if len(body) > MAX_VALUE_BYTES:
        raise ApiError(413, f"a KV value is at most {MAX_VALUE_BYTES} bytes")
    text = body.decode("utf-8", errors="replace")
    try:
        value = json.loads(text)
    except ValueError:
        value = text
    ttl_text = request.headers.get("ttl")
    try:
        ttl = parse_duration(ttl_text) if ttl_text else None
    except ValueError as exc:
        raise ApiError(400, f"ttl header: {exc}") from None

    def put() -> None:
        previous = ctx.store.kv_get(namespace, key)
        ctx.store.kv_put(new_entry(namespace, key, value, ttl=ttl,
                                   description=request.headers.get("description"),
                                   previous=previous))

    await run_in_threadpool(put)


@router.delete("/{key}", summary="Delete a key-value pair")
def delete_value(namespace: str, key: str, ctx: Ctx) -> bool:
    return ctx.store.kv_delete(check_namespace(namespace), check_key(key))


@router.delete("", summary="Bulk-delete key-value pairs of a namespace")
def delete_values(namespace: str, body: DeleteKeys, ctx: Ctx) -> dict[str, list[str]]:
    check_namespace(namespace)
    return {"keys": [key for key in body.keys[:MAX_KEYS_LISTED]
                     if ctx.store.kv_delete(namespace, check_key(key))]}
