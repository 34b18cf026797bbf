"""/api/v1/executions/webhook/{namespace}/{flowId}/{key}: start a flow from
its Webhook trigger. The body, headers and query string are data for the
execution (trigger.body/headers/parameters), never rendered as templates."""

from __future__ import annotations

import hmac
import json
from collections import defaultdict
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from harrier.common.errors import FlowNotFound
from harrier.common.flow import Flow
from harrier.common.templating import render
from harrier.common.triggers import WebhookTrigger
from harrier.scheduler.api.body import read_limited
from harrier.scheduler.api.context import ApiContext, Ctx
from harrier.scheduler.api.errors import ApiError
from harrier.scheduler.api.launch import launch
from harrier.scheduler.flow_catalog import trigger_key_text

router = APIRouter(prefix="/executions/webhook", tags=["webhook"])

# Credentials of the caller are not the flow's data: keep them out of the
# stored execution (which the API shows to anyone who may read executions).
_PRIVATE_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})


def find_trigger(flow: Flow, key: str) -> WebhookTrigger | None:
    """The enabled Webhook trigger with this key; every key is compared in
    constant time so the answer's timing says nothing about near misses."""
    found = None
    for trigger in flow.triggers_of(WebhookTrigger):
        assert isinstance(trigger, WebhookTrigger)
        if hmac.compare_digest(trigger.key.encode("utf-8"), key.encode("utf-8")):
            found = trigger
    return None if flow.disabled else found


def _resolve(ctx: ApiContext, namespace: str, flow_id: str,
             key: str) -> tuple[Flow, WebhookTrigger]:
    # One answer for unknown flow, disabled flow or trigger and wrong key:
    # a caller without the key learns nothing about what exists.
    not_found = ApiError(404, f"no webhook at {namespace}/{flow_id} with this key")
    try:
        flow = ctx.flow(namespace, flow_id)
    except FlowNotFound:
        raise not_found from None
    trigger = find_trigger(flow, key)
    if trigger is None or trigger_key_text((namespace, flow_id, trigger.id)) in \
            ctx.triggers.disabled_keys():
        raise not_found
    return flow, trigger


def parse_body(data: bytes) -> Any:
    """JSON when it parses, else the text as it came (None when empty)."""
    if not data:
        return None
    text = data.decode("utf-8", errors="replace")
    try:
        return json.loads(text)
    except ValueError:
        return text


def multimap(pairs: list[tuple[str, str]], *, lower: bool = False) -> dict[str, list[str]]:
    """Kestra gives headers and parameters as name -> list of values."""
    found: dict[str, list[str]] = defaultdict(list)
    for name, value in pairs:
        found[name.lower() if lower else name].append(value)
    return dict(found)


def trigger_variables(trigger: WebhookTrigger, request: Request, body: Any) -> dict[str, Any]:
    headers = [(k, v) for k, v in request.headers.items() if k.lower() not in _PRIVATE_HEADERS]
    return {"id": trigger.id, "type": trigger.type, "body": body,
            "headers": multimap(headers, lower=True),
            "parameters": multimap(list(request.query_params.multi_items()))}


def trigger_inputs(flow: Flow, trigger: WebhookTrigger,
                   variables: dict[str, Any]) -> dict[str, Any]:
    """The trigger's `inputs` as the flow author wrote them, rendered once with
    the request as data (a `{{ }}` inside the body stays literal text)."""
    if not trigger.inputs:
        return {}
    context = {"trigger": variables, "flow": {"id": flow.id, "namespace": flow.namespace}}
    rendered: dict[str, Any] = render(dict(trigger.inputs), context,
                                      field=f"triggers.{trigger.id}.inputs")
    return rendered


async def webhook(namespace: str, flow_id: str, key: str, request: Request,
                  ctx: Ctx) -> JSONResponse:
    """Create and start an execution; the answer is the execution (with its id)."""
    # The body is already in memory (BodyLimit read it), so reading it before
    # the key is checked costs nothing; then one trip to a worker thread for
    # all the blocking work.
    data = await read_limited(request, ctx.settings.webhook_max_body, "webhook body")

    def start() -> dict[str, Any]:
        flow, trigger = _resolve(ctx, namespace, flow_id, key)
        variables = trigger_variables(trigger, request, parse_body(data))
        inputs = trigger_inputs(flow, trigger, variables)
        return launch(ctx, flow, inputs, trigger=variables).to_json()

    return JSONResponse(await run_in_threadpool(start))


for _method in ("POST", "GET", "PUT"):
    router.add_api_route("/{namespace}/{flow_id}/{key}", webhook, methods=[_method],
                         summary=f"Trigger a flow by its webhook key ({_method})",
                         operation_id=f"webhook_{_method.lower()}")
