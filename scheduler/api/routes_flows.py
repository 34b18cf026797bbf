"""/api/v1/flows: list, search, get (by revision), create (POST), update
(PUT, a new revision), delete and validate flows sent as YAML bodies."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from harrier.common.errors import FlowNotFound, FlowValidationError
from harrier.common.flow import Flow, parse_flow
from harrier.common.yaml_source import MAX_YAML_BYTES, load_yaml
from harrier.scheduler.api.auth import require_auth
from harrier.scheduler.api.body import decode_text, read_limited
from harrier.scheduler.api.context import ApiContext, Ctx
from harrier.scheduler.api.errors import ApiError, problem_details
from harrier.scheduler.api.flow_json import flow_json

router = APIRouter(prefix="/flows", tags=["flows"], dependencies=[Depends(require_auth)])

MAX_FLOW_BYTES = MAX_YAML_BYTES
_SOURCE = "<request body>"
_YAML_BODY = {"requestBody": {"required": True, "content": {
    "application/x-yaml": {"schema": {"type": "string"}}}}}
_DOCUMENT_SEPARATOR = re.compile(r"^---[ \t]*$", re.MULTILINE)


async def _yaml_body(request: Request) -> str:
    text = decode_text(await read_limited(request, MAX_FLOW_BYTES, "flow source"),
                       "flow source")
    if not text.strip():
        raise ApiError(400, "empty body: send the flow's YAML (Content-Type: application/x-yaml)")
    return text


@router.get("/search", summary="Search flows")
def search_flows(
    ctx: Ctx, namespace: str | None = None, q: str | None = None,
    page: Annotated[int, Query(ge=1)] = 1,
    size: Annotated[int, Query(ge=1, le=1000)] = 25,
) -> dict[str, Any]:
    records = [r for r in ctx.store.list_flows()
               if (not namespace or r.namespace == namespace
                   or r.namespace.startswith(namespace + "."))
               and (not q or q.lower() in f"{r.namespace}.{r.flow_id}".lower())]
    records.sort(key=lambda r: (r.namespace, r.flow_id))
    chosen = records[(page - 1) * size:page * size]
    return {"results": [flow_json(r) for r in chosen], "total": len(records)}


@router.get("", summary="Every flow, latest revision")
def list_flows(ctx: Ctx) -> list[dict[str, Any]]:
    records = sorted(ctx.store.list_flows(), key=lambda r: (r.namespace, r.flow_id))
    return [flow_json(r) for r in records]


@router.post("/validate", summary="Validate flow YAML (documents separated by ---)",
             openapi_extra=_YAML_BODY)
async def validate(
    request: Request,
    source: Annotated[str | None, Query(max_length=200, pattern=r"^[\w./-]+$")] = None,
) -> list[dict[str, Any]]:
    """`?source=flows/daily.yaml` names the text in the messages, as `harrier
    validate` names the file (default `<request body>`)."""
    text = await _yaml_body(request)
    documents = [d for d in _DOCUMENT_SEPARATOR.split(text) if d.strip()]
    return [_validation(index, document, source or _SOURCE)
            for index, document in enumerate(documents)]


def _validation(index: int, text: str, source: str = _SOURCE) -> dict[str, Any]:
    result: dict[str, Any] = {"index": index, "flow": None, "namespace": None,
                              "constraints": None, "problems": [], "outdated": False,
                              "deprecationPaths": [], "warnings": [], "infos": []}
    try:
        data = load_yaml(text, source).data
        if isinstance(data, dict):
            result["flow"], result["namespace"] = data.get("id"), data.get("namespace")
        parse_flow(text, source)
    except FlowValidationError as exc:
        result["constraints"] = str(exc)
        result["problems"] = problem_details(exc)
    return result


@router.post("", summary="Create a flow (revision 1)", openapi_extra=_YAML_BODY)
async def create_flow(request: Request, ctx: Ctx) -> dict[str, Any]:
    flow = await run_in_threadpool(parse_flow, await _yaml_body(request), _SOURCE)
    return await run_in_threadpool(_create, ctx, flow)


def _create(ctx: ApiContext, flow: Flow) -> dict[str, Any]:
    try:
        existing = ctx.store.get_flow(flow.namespace, flow.id)
    except FlowNotFound:
        return flow_json(ctx.store.put_flow(flow.namespace, flow.id, flow.source))
    raise ApiError(409, f"flow {flow.namespace}.{flow.id} already exists (revision "
                   f"{existing.revision}); update it with PUT /api/v1/flows/"
                   f"{flow.namespace}/{flow.id}")


@router.get("/{namespace}", summary="Flows of a namespace")
def namespace_flows(namespace: str, ctx: Ctx) -> list[dict[str, Any]]:
    records = [r for r in ctx.store.list_flows() if r.namespace == namespace]
    return [flow_json(r) for r in sorted(records, key=lambda r: r.flow_id)]


@router.get("/{namespace}/{flow_id}", summary="A flow (latest or a given revision)")
def get_flow(namespace: str, flow_id: str, ctx: Ctx,
             revision: Annotated[int | None, Query(ge=1)] = None) -> dict[str, Any]:
    return flow_json(ctx.store.get_flow(namespace, flow_id, revision))


@router.get("/{namespace}/{flow_id}/revisions", summary="Every revision of a flow")
def flow_revisions(namespace: str, flow_id: str, ctx: Ctx) -> list[dict[str, Any]]:
    records = ctx.store.flow_revisions(namespace, flow_id)
    if not records:
        raise FlowNotFound(f"flow {namespace}.{flow_id} not found")
    return [flow_json(r) for r in records]


@router.put("/{namespace}/{flow_id}", summary="Update a flow (a new revision)",
            openapi_extra=_YAML_BODY)
async def update_flow(namespace: str, flow_id: str, request: Request,
                      ctx: Ctx) -> dict[str, Any]:
    flow = await run_in_threadpool(parse_flow, await _yaml_body(request), _SOURCE)
    mismatched = [{"message": f"{name}: the body says {got!r} but the path says {want!r}",
                   "field": name}
                  for name, got, want in (("namespace", flow.namespace, namespace),
                                          ("id", flow.id, flow_id)) if got != want]
    if mismatched:
        raise ApiError(422, "the flow in the body is not the one in the path: "
                       + "; ".join(d["message"] for d in mismatched), mismatched)
    return await run_in_threadpool(_update, ctx, flow)


def _update(ctx: ApiContext, flow: Flow) -> dict[str, Any]:
    ctx.store.get_flow(flow.namespace, flow.id)  # Kestra: PUT updates, POST creates
    return flow_json(ctx.store.put_flow(flow.namespace, flow.id, flow.source))


@router.delete("/{namespace}/{flow_id}", status_code=204, summary="Delete a flow")
def delete_flow(namespace: str, flow_id: str, ctx: Ctx) -> Response:
    ctx.store.delete_flow(namespace, flow_id)
    return Response(status_code=204)
