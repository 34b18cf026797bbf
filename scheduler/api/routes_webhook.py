"""/api/v1/executions/webhook/{namespace}/{flowId}/{key}: start a flow from
its Webhook trigger. The body, headers and query string are data for the
execution (trigger.body/headers/parameters), never rendered as templates."""

from __future__ import annotations

import hmac
import json
import logging
from collections import defaultdict
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from harrier.common.errors import FlowNotFound, TemplateError
from harrier.common.flow import Flow
from harrier.common.templating import render
from harrier.common.trigger_conditions import ConditionError
from harrier.common.triggers import WebhookTrigger, is_template
from harrier.scheduler.api.body import read_limited
from harrier.scheduler.api.context import ApiContext, Ctx
from harrier.scheduler.api.errors import ApiError
from harrier.scheduler.api.launch import launch
from harrier.scheduler.flow_catalog import trigger_key_text
from harrier.scheduler.trigger_state import stopped_after

log = logging.getLogger(__name__)
router = APIRouter(prefix="/executions/webhook", tags=["webhook"])

# Credentials of the caller are not the flow's data: keep them out of the
# stored execution (which the API shows to anyone who may read executions).
_PRIVATE_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})


def find_trigger(flow: Flow, key: str, secrets: Mapping[str, str] | None = None
                 ) -> WebhookTrigger | None:
    """The enabled Webhook trigger with this key; every key is compared in
    constant time so the answer's timing says nothing about near misses. A
    key written as a template (`{{ secret('WEBHOOK_KEY') }}`) is rendered
    first, as Kestra does, with `flow` and the secrets."""
    found = None
    for trigger in flow.triggers_of(WebhookTrigger):
        assert isinstance(trigger, WebhookTrigger)
        expected = webhook_key(flow, trigger, secrets)
        if expected and hmac.compare_digest(expected.encode("utf-8"), key.encode("utf-8")):
            found = trigger
    return None if flow.disabled else found


def webhook_key(flow: Flow, trigger: WebhookTrigger,
                secrets: Mapping[str, str] | None) -> str | None:
    if not is_template(trigger.key):
        return trigger.key
    context = {"flow": {"id": flow.id, "namespace": flow.namespace}}
    try:
        return str(render(trigger.key, context, field=f"triggers.{trigger.id}.key",
                          secrets=secrets))
    except TemplateError as exc:
        # A key that cannot be rendered matches nothing; the operator sees why.
        log.warning("webhook %s.%s: %s", flow.namespace, flow.id, exc)
        return None


def _resolve(ctx: ApiContext, namespace: str, flow_id: str,
             key: str) -> tuple[Flow, int, WebhookTrigger]:
    # One answer for unknown flow, disabled flow or trigger and wrong key:
    # a caller without the key learns nothing about what exists.
    not_found = ApiError(404, f"no webhook at {namespace}/{flow_id} with this key")
    try:
        flow, revision = ctx.flow_revision(namespace, flow_id)
    except FlowNotFound:
        raise not_found from None
    trigger = find_trigger(flow, key, ctx.settings.secrets)
    if trigger is None or trigger_key_text((namespace, flow_id, trigger.id)) in \
            ctx.triggers.disabled_keys():
        raise not_found
    return flow, revision, trigger


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
            # When the request came: what date conditions test by default.
            "date": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
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
                  ctx: Ctx) -> Response:
    """Create and start an execution; the answer is the execution (with its id)."""
    # The body is already in memory (BodyLimit read it), so reading it before
    # the key is checked costs nothing; then one trip to a worker thread for
    # all the blocking work.
    data = await read_limited(request, ctx.settings.webhook_max_body, "webhook body")

    def start() -> Response:
        flow, revision, trigger = _resolve(ctx, namespace, flow_id, key)
        variables = trigger_variables(trigger, request, parse_body(data))
        text = trigger_key_text((namespace, flow_id, trigger.id))
        if stopped_after(ctx.triggers, ctx.store, text, trigger):
            raise ApiError(404, f"no webhook at {namespace}/{flow_id} with this key")
        if not _conditions_hold(ctx, flow, trigger, variables):
            # As Kestra: the request is fine, the conditions say no.
            return Response(status_code=204)
        inputs = trigger_inputs(flow, trigger, variables)
        # Pinned to the revision whose key matched; answered as created (as
        # Kestra's webhook does): two round trips less per call.
        execution = launch(ctx, flow, inputs, trigger=variables, revision=revision,
                           as_created=True)
        if trigger.stop_after:
            ctx.triggers.set_last_execution(text, execution.id)
        return JSONResponse(execution.to_json())

    return await run_in_threadpool(start)


def _conditions_hold(ctx: ApiContext, flow: Flow, trigger: WebhookTrigger,
                     variables: dict[str, Any]) -> bool:
    if not trigger.conditions and trigger.when is None:
        return True
    try:
        return trigger.should_fire({"trigger": variables,
                                    "flow": {"id": flow.id, "namespace": flow.namespace}},
                                   ctx.settings.secrets)
    except ConditionError as exc:
        raise ApiError(422, f"triggers.{trigger.id}.conditions: {exc}") from exc


for _method in ("POST", "GET", "PUT"):
    router.add_api_route("/{namespace}/{flow_id}/{key}", webhook, methods=[_method],
                         summary=f"Trigger a flow by its webhook key ({_method})",
                         operation_id=f"webhook_{_method.lower()}")
