"""The flows pages: the list (next fire time, the last runs' states) and a
flow's page (YAML source with a validating editor that saves through the API,
the Run form generated from typed inputs, triggers with enable/disable, and
the Backfill form)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from harrier.common.errors import InputError
from harrier.common.flow import Flow
from harrier.common.inputs import InputType
from harrier.common.store import ExecutionQuery, FlowRecord
from harrier.scheduler.api.context import ApiContext, Ctx
from harrier.scheduler.api.errors import ApiError
from harrier.scheduler.api.launch import launch
from harrier.scheduler.api.request_inputs import inputs_from_form
from harrier.scheduler.api.routes_triggers import fire_context
from harrier.scheduler.backfill import BackfillError
from harrier.scheduler.trigger_view import (
    TriggerNotFound,
    TriggerView,
    find_trigger,
    run_backfill,
    trigger_views,
)
from harrier.scheduler.ui.flow_tree import form_fields, form_inputs, parsed, split_problems
from harrier.scheduler.ui.pages_executions import execution_row
from harrier.scheduler.ui.rendering import check_same_origin, page

router = APIRouter()
RECENT_RUNS = 10
MAX_LISTED_FLOWS = 500


def _parse(record: FlowRecord) -> Flow | None:
    return parsed(record)  # None: stored before validation got stricter: listed, not parsed


def _recent_states(ctx: ApiContext, namespace: str, flow_id: str) -> list[dict[str, Any]]:
    found, _ = ctx.store.search_executions(ExecutionQuery(
        namespace=namespace, flow_id=flow_id, limit=RECENT_RUNS))
    return [{"id": e.id, "state": e.state.current.value, "start": e.start_date}
            for e in reversed(found)]


@router.get("/flows", response_class=HTMLResponse, summary="Flows (UI)")
def flows_page(request: Request, ctx: Ctx, q: str = "") -> HTMLResponse:
    records = sorted(ctx.store.list_flows(), key=lambda r: (r.namespace, r.flow_id))
    if q.strip():
        needle = q.strip().lower()
        records = [r for r in records if needle in f"{r.namespace}.{r.flow_id}".lower()]
    shown = records[:MAX_LISTED_FLOWS]
    flows = {(r.namespace, r.flow_id): _parse(r) for r in shown}
    views = trigger_views([f for f in flows.values() if f is not None], ctx.triggers,
                          ctx.store)
    rows = []
    for record in shown:
        flow = flows[(record.namespace, record.flow_id)]
        mine = [v for v in views if flow is not None and v.flow is flow]
        upcoming = [v.next_fire for v in mine if v.next_fire is not None]
        rows.append({"namespace": record.namespace, "id": record.flow_id,
                     "revision": record.revision, "valid": flow is not None,
                     "disabled": bool(flow and flow.disabled),
                     "description": (flow.description or "") if flow else "",
                     "triggers": len(mine), "next": min(upcoming) if upcoming else None,
                     "recent": _recent_states(ctx, record.namespace, record.flow_id)})
    return page(request, "flows.html", rows=rows, q=q, total=len(records),
                shown=len(shown), nav="flows", title="Flows")


def _flow_page(request: Request, ctx: ApiContext, namespace: str, flow_id: str, *,
               status_code: int = 200, run_values: dict[str, Any] | None = None,
               run_errors: dict[str, list[str]] | None = None, run_general: Sequence[str] = (),
               backfill: dict[str, Any] | None = None) -> HTMLResponse:
    record = ctx.store.get_flow(namespace, flow_id)
    flow = _parse(record)
    views: list[TriggerView] = trigger_views([flow], ctx.triggers, ctx.store) if flow else []
    recent, _ = ctx.store.search_executions(ExecutionQuery(
        namespace=namespace, flow_id=flow_id, limit=RECENT_RUNS))
    return page(
        request, "flow.html", status_code=status_code, record=record, flow=flow,
        fields=form_fields(flow.inputs, run_values) if flow else [],
        run_errors=run_errors or {}, run_general=list(run_general), triggers=views,
        schedules=[v for v in views if v.trigger.type.endswith("Schedule")],
        backfill=backfill or {}, recent=[execution_row(e) for e in recent],
        source_name=f"{namespace}.{flow_id}.yaml", nav="flows",
        title=f"Flow {namespace}.{flow_id}")


@router.get("/flows/{namespace}/{flow_id}", response_class=HTMLResponse,
            summary="One flow (UI)")
def flow_page(namespace: str, flow_id: str, request: Request, ctx: Ctx) -> HTMLResponse:
    return _flow_page(request, ctx, namespace, flow_id)


@router.post("/flows/{namespace}/{flow_id}/run", summary="Run a flow from the form (UI)",
             dependencies=[Depends(check_same_origin)])
async def run_flow(namespace: str, flow_id: str, request: Request, ctx: Ctx) -> Response:
    flow = await run_in_threadpool(ctx.flow, namespace, flow_id)
    async with request.form(max_files=50, max_fields=500) as form:
        values, uploads = inputs_from_form(form)
        uploads = [u for u in uploads if u.filename]  # a file field left empty: no file
        given = form_inputs(flow.inputs, values)
        try:
            execution = await run_in_threadpool(
                lambda: launch(ctx, flow, given, trigger={"type": "api", "id": "ui"},
                               uploads=uploads))
        except InputError as exc:
            by_field, general = split_problems(exc.problems)
            secrets = {s.id for s in flow.inputs if s.type == InputType.SECRET}
            shown = {k: v for k, v in given.items() if k not in secrets}
            return await run_in_threadpool(
                lambda: _flow_page(request, ctx, namespace, flow_id, status_code=422,
                                   run_values=shown, run_errors=by_field,
                                   run_general=general))
    return RedirectResponse(f"/ui/executions/{execution.id}", status_code=303)


@router.post("/flows/{namespace}/{flow_id}/triggers/{trigger_id}",
             summary="Enable or disable a trigger (UI)", dependencies=[Depends(check_same_origin)])
async def toggle_trigger(namespace: str, flow_id: str, trigger_id: str, request: Request,
                         ctx: Ctx) -> Response:
    form = await request.form(max_files=0, max_fields=5)
    disabled = form.get("disabled") == "true"
    flow = await run_in_threadpool(ctx.flow, namespace, flow_id)
    try:
        find_trigger(flow, trigger_id)
    except TriggerNotFound as exc:
        raise ApiError(404, str(exc)) from None
    await run_in_threadpool(ctx.triggers.set_disabled,
                            [f"{namespace}/{flow_id}/{trigger_id}"], disabled)
    return RedirectResponse(f"/ui/flows/{namespace}/{flow_id}#triggers", status_code=303)


def _moment(text: str, name: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise BackfillError(f"{name}: {text!r} is not a date and time "
                            "(e.g. 2024-01-31T00:00)") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@router.post("/flows/{namespace}/{flow_id}/backfill", response_class=HTMLResponse,
             summary="Backfill a Schedule trigger (UI)", dependencies=[Depends(check_same_origin)])
async def backfill_flow(namespace: str, flow_id: str, request: Request, ctx: Ctx) -> Response:
    form = await request.form(max_files=0, max_fields=10)
    fields = {k: str(form.get(k) or "") for k in ("trigger", "start", "end")}

    def work() -> HTMLResponse:
        flow = ctx.flow(namespace, flow_id)
        result: dict[str, Any] = {"form": fields}
        status = 200
        try:
            trigger = find_trigger(flow, fields["trigger"])
            start = _moment(fields["start"], "Start")
            end = _moment(fields["end"], "End") if fields["end"] else datetime.now(UTC)
            done = run_backfill(fire_context(ctx), flow, trigger, start, end)
            result.update(executions=done.executions, already=done.already_fired)
        except (TriggerNotFound, BackfillError, InputError) as exc:
            result["error"] = str(exc)
            status = 422
        except ApiError as exc:
            result["error"] = exc.message
            status = exc.status
        return _flow_page(request, ctx, namespace, flow_id, status_code=status,
                          backfill=result)

    return await run_in_threadpool(work)
