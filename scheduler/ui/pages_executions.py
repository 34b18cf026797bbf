"""The executions pages: the list (newest first, last 24 h by default,
filters, server-side pages read from the store's indexes) and one
execution's page (its data as JSON for execution.js; the Resume form of a
paused execution), plus the log windows the page's virtual log view reads."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from harrier.common.errors import ExecutionNotFound, FlowNotFound, InputError
from harrier.common.execution import WAITING, Execution, LogEntry
from harrier.common.flow import Flow
from harrier.common.inputs import InputSpec, InputType
from harrier.common.state import State, iso
from harrier.common.store import ExecutionQuery, ExecutionStore
from harrier.scheduler.api.context import ApiContext, Ctx
from harrier.scheduler.api.errors import ApiError
from harrier.scheduler.api.launch import launch, resume_with_files
from harrier.scheduler.api.request_inputs import inputs_from_form
from harrier.scheduler.control import ExecutionConflict
from harrier.scheduler.ui.flow_tree import (
    form_fields,
    form_inputs,
    parsed,
    split_problems,
    task_tree,
    trigger_kind,
)
from harrier.scheduler.ui.rendering import SECURITY_HEADERS, check_same_origin, page
from harrier.worker.loop_runs import iteration_id
from harrier.worker.pauses import PAUSE_TYPE
from harrier.worker.subflows import parent_of

router = APIRouter()

WINDOWS = {"1h": timedelta(hours=1), "24h": timedelta(hours=24), "7d": timedelta(days=7),
           "30d": timedelta(days=30)}
PAGE_SIZES = (25, 50, 100)
LOG_WINDOW_MAX = 20_000


@dataclass
class ListFilters:
    namespace: str = ""
    flow_id: str = ""
    states: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    window: str = "24h"
    start: str = ""  # datetime-local text, UTC
    end: str = ""
    page: int = 1
    size: int = 25
    problems: list[str] = field(default_factory=list)

    def params(self) -> dict[str, Any]:
        return {"namespace": self.namespace, "flowId": self.flow_id, "state": self.states,
                "label": self.labels, "window": self.window, "from": self.start,
                "to": self.end, "size": self.size if self.size != 25 else None}

    def query(self, now: datetime) -> ExecutionQuery:
        start = _local_time(self.start, "From", self.problems)
        end = _local_time(self.end, "To", self.problems)
        if start is None and end is None and self.window in WINDOWS:
            start = now - WINDOWS[self.window]
        states = []
        for name in self.states:
            if name.upper() in State.__members__:
                states.append(State(name.upper()))
            elif name:
                self.problems.append(f"unknown state {name!r}")
        labels = []
        for text in self.labels:
            key, sep, value = text.partition(":")
            if sep and key.strip():
                labels.append((key.strip(), value.strip()))
            elif text.strip():
                self.problems.append(f"label {text!r}: expected key:value")
        return ExecutionQuery(namespace=self.namespace or None, flow_id=self.flow_id or None,
                              states=tuple(states), start_after=start, start_before=end,
                              labels=tuple(labels), limit=self.size,
                              offset=(self.page - 1) * self.size)


def _local_time(text: str, name: str, problems: list[str]) -> datetime | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        problems.append(f"{name}: {text!r} is not a date and time (e.g. 2024-01-31T10:00)")
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def execution_row(execution: Execution) -> dict[str, Any]:
    state = execution.state
    return {"id": execution.id, "namespace": execution.namespace, "flowId": execution.flow_id,
            "state": state.current.value, "start": state.start_date,
            "duration": state.duration_seconds(), "labels": execution.labels,
            "trigger": trigger_kind(execution.trigger), "revision": execution.flow_revision}


@router.get("/executions", response_class=HTMLResponse, summary="Executions (UI)")
def executions_page(
    request: Request, ctx: Ctx,
    namespace: str = "", flow_id: Annotated[str, Query(alias="flowId")] = "",
    state: Annotated[list[str] | None, Query()] = None,
    label: Annotated[list[str] | None, Query()] = None,
    window: str = "24h", start: Annotated[str, Query(alias="from")] = "",
    end: Annotated[str, Query(alias="to")] = "",
    page_number: Annotated[int, Query(alias="page", ge=1, le=100_000)] = 1,
    size: Annotated[int, Query(ge=1, le=100)] = 25,
    partial: bool = False,
) -> HTMLResponse:
    filters = ListFilters(namespace.strip(), flow_id.strip(), [s for s in state or [] if s],
                          [lab for lab in label or [] if lab], window, start, end, page_number,
                          size if size in PAGE_SIZES else 25)
    query = filters.query(datetime.now(UTC))
    found, total = ([], 0) if filters.problems else ctx.store.search_executions(query)
    pages = max(1, -(-total // filters.size))
    template = "_executions_table.html" if partial else "executions.html"
    return page(request, template, filters=filters, rows=[execution_row(e) for e in found],
                total=total, pages=pages, windows=list(WINDOWS), page_sizes=PAGE_SIZES,
                nav="executions", title="Executions")


def _secret_inputs(ctx: ApiContext, execution: Execution
                   ) -> tuple[list[str], dict, Flow | None]:
    """The flow revision's SECRET inputs (masked on the page), its task tree,
    and the revision parsed (None when it cannot be read)."""
    try:
        record = ctx.store.get_flow(execution.namespace, execution.flow_id,
                                    execution.flow_revision)
    except FlowNotFound:
        return [], {"groups": []}, None
    flow = parsed(record)
    if flow is None:
        return [], {"groups": []}, None
    secrets = [spec.id for spec in flow.inputs if spec.type == InputType.SECRET]
    return secrets, task_tree(flow), flow


def masked(values: dict[str, Any], secrets: list[str]) -> dict[str, Any]:
    return {k: ("******" if k in secrets and v is not None else v) for k, v in values.items()}


def resume_specs(flow: Flow | None, execution: Execution) -> list[InputSpec] | None:
    """The `onResume` inputs of the execution's paused Pause tasks (the Resume
    form's fields); None when the execution is not paused."""
    if execution.state.current != State.PAUSED:
        return None
    specs: dict[str, InputSpec] = {}
    for run in execution.task_runs:
        if run.state.current != State.PAUSED or WAITING not in run.outputs or flow is None:
            continue
        try:
            task = flow.index.task(run.task_id)
        except KeyError:
            continue
        if PAUSE_TYPE in task.type_names:
            for spec in getattr(task, "on_resume", []):
                specs.setdefault(spec.id, spec)
    return list(specs.values())


def _execution_page(request: Request, ctx: ApiContext, execution_id: str, *,
                    status_code: int = 200, resume_values: dict[str, Any] | None = None,
                    resume_errors: dict[str, list[str]] | None = None,
                    resume_general: list[str] | None = None) -> HTMLResponse:
    execution = ctx.store.get_execution(execution_id)
    secrets, tree, flow = _secret_inputs(ctx, execution)
    data = execution.to_json()
    data["inputs"] = masked(execution.inputs, secrets)
    boot = {"execution": data, "tree": tree, "secrets": secrets,
            "logCount": ctx.store.count_logs(execution_id), "now": iso(datetime.now(UTC))}
    specs = resume_specs(flow, execution)
    return page(request, "execution.html", status_code=status_code, execution=execution,
                row=execution_row(execution), inputs=masked(execution.inputs, secrets),
                boot=boot, nav="executions", title=f"Execution {execution.id}",
                resume_fields=None if specs is None else form_fields(specs, resume_values),
                resume_errors=resume_errors or {}, resume_general=resume_general or [],
                **subflow_links(execution, ctx.store))


@router.get("/executions/{execution_id}", response_class=HTMLResponse,
            summary="One execution (UI)")
def execution_page(execution_id: str, request: Request, ctx: Ctx) -> HTMLResponse:
    return _execution_page(request, ctx, execution_id)


@router.post("/executions/{execution_id}/resume", dependencies=[Depends(check_same_origin)],
             summary="Resume a paused execution from its Resume form (UI)")
async def resume(execution_id: str, request: Request, ctx: Ctx) -> Response:
    """The same resume as POST /api/v1/executions/{id}/resume; invalid inputs
    (422) or an execution no longer paused (409) show on the page."""
    async with request.form(max_files=50, max_fields=500) as form:
        values, uploads = inputs_from_form(form)

        def work() -> Response:
            execution = ctx.store.get_execution(execution_id)
            _, _, flow = _secret_inputs(ctx, execution)
            specs = resume_specs(flow, execution) or []
            given = form_inputs(specs, values)
            try:
                resume_with_files(ctx, execution_id, given,
                                  [u for u in uploads if u.filename])
            except InputError as exc:
                by_field, general = split_problems(exc.problems)
                secret = {s.id for s in specs if s.type == InputType.SECRET}
                return _execution_page(
                    request, ctx, execution_id, status_code=422,
                    resume_values={k: v for k, v in given.items() if k not in secret},
                    resume_errors=by_field, resume_general=general)
            except ExecutionConflict as exc:
                return _execution_page(request, ctx, execution_id, status_code=409,
                                       resume_general=[str(exc)])
            return RedirectResponse(f"/ui/executions/{execution_id}", status_code=303)

        return await run_in_threadpool(work)


# A Loop's iterations linked from its execution's page: the first this many.
_MAX_ITERATION_LINKS = 100


def subflow_links(execution: Execution, store: ExecutionStore) -> dict[str, Any]:
    """The execution's parent (it was started by a Subflow task, or it is an
    iteration of a Loop) and the executions its own Subflow tasks and Loops
    started, for the page's links."""
    parent = parent_of(execution)
    children = [{"task": run.task_id, "value": run.value, "id": str(run.outputs["executionId"])}
                for run in execution.task_runs
                if run.outputs.get("executionId") and isinstance(run.outputs["executionId"], str)
                and run.outputs.get("executionId") != execution.id]
    for run in execution.task_runs:
        count = run.outputs.get("iterationCount")
        if isinstance(count, int) and count > 0 and _has_iterations(store, run.id):
            children.extend({"task": run.task_id, "value": f"iteration {index}",
                             "id": iteration_id(run.id, index)}
                            for index in range(min(count, _MAX_ITERATION_LINKS)))
    found = {"id": parent[1], "flow": f"{parent[0].namespace}.{parent[0].flow_id}"} \
        if parent else None
    if execution.loop_run is not None:
        found = {"id": str(execution.loop_run["parentId"]),
                 "flow": f"{execution.namespace}.{execution.flow_id} "
                         f"(iteration {execution.loop_run.get('index')} of "
                         f"{execution.loop_run.get('taskId')})"}
    return {"parent": found, "children": children}


def _has_iterations(store: ExecutionStore, run_id: str) -> bool:
    """The run is a Loop's that started iterations (a LoopUntil also counts some)."""
    try:
        store.execution_state(iteration_id(run_id, 0))
    except ExecutionNotFound:
        return False
    return True


def _compact(entry: LogEntry) -> list[Any]:
    return [entry.id, iso(entry.timestamp), entry.level, entry.task_run_id, entry.task_id,
            entry.attempt, entry.message]


@router.get("/executions/{execution_id}/logs", summary="A window of an execution's logs (UI)")
async def log_window(
    execution_id: str, ctx: Ctx,
    before: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=LOG_WINDOW_MAX)] = 500,
) -> JSONResponse:
    """The `limit` entries before `before` (the newest when absent), oldest
    first, as compact rows [id, timestamp, level, taskRunId, taskId, attempt,
    message]; `more` says whether older entries remain."""
    if before is not None and not before.replace("-", "").isdigit():
        raise ApiError(400, f"before: expected a log entry id, got {before!r}")

    def read() -> dict[str, Any]:
        entries = ctx.store.read_logs_before(execution_id, before, limit=limit)
        return {"entries": [_compact(e) for e in entries], "more": len(entries) == limit}

    return JSONResponse(await run_in_threadpool(read), headers={"Cache-Control": "no-store",
                        "X-Content-Type-Options": SECURITY_HEADERS["X-Content-Type-Options"]})


@router.post("/executions/{execution_id}/rerun", dependencies=[Depends(check_same_origin)],
             summary="Run the flow again with this execution's inputs (UI)")
async def rerun(execution_id: str, ctx: Ctx) -> RedirectResponse:
    def work() -> str:
        previous = ctx.store.get_execution(execution_id)
        flow = ctx.flow(previous.namespace, previous.flow_id)
        execution = launch(ctx, flow, previous.inputs, trigger={"type": "api", "id": "ui"},
                           labels=previous.labels)
        return execution.id

    return RedirectResponse(f"/ui/executions/{await run_in_threadpool(work)}",
                            status_code=303)
