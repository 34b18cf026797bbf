"""The FastAPI application: Kestra-compatible /api/v1 routes over a store and
a Celery app, plus /healthz, /api/v1/configs and the OpenAPI document."""

from __future__ import annotations

from importlib import metadata
from typing import Any

from celery import Celery
from fastapi import APIRouter, Depends, FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse

from harrier.common.celery_app import broker_problem
from harrier.common.errors import StoreUnavailable
from harrier.common.metrics import enable_metrics
from harrier.common.settings import Settings
from harrier.common.store import ExecutionStore
from harrier.scheduler.api import (
    routes_executions,
    routes_flows,
    routes_kv,
    routes_logs,
    routes_metrics,
    routes_spark,
    routes_triggers,
    routes_webhook,
)
from harrier.scheduler.api.auth import auth_required, check_auth_settings, require_auth
from harrier.scheduler.api.body import BodyLimit
from harrier.scheduler.api.context import ApiContext, Ctx
from harrier.scheduler.api.errors import install_error_handlers
from harrier.scheduler.trigger_state import trigger_states_for

# Kestra OSS has one tenant, "main"; its clients may put it in the path.
_TENANT_PREFIX = "/api/v1/main"


def _version() -> str:
    try:
        return metadata.version("harrier")
    except metadata.PackageNotFoundError:
        return "0.0.0"


def create_api(settings: Settings, store: ExecutionStore, celery_app: Celery) -> FastAPI:
    """The API app; serve it with uvicorn (`harrier api`) or mount it elsewhere."""
    check_auth_settings(settings)
    api = FastAPI(
        title="Harrier", version=_version(),
        description="Kestra-compatible API: flows, executions, logs and webhooks.",
        # The document and /docs are served below, behind the API's credentials.
        openapi_url=None, docs_url=None, redoc_url=None)
    api.state.harrier = ApiContext(settings, store, celery_app, trigger_states_for(store))
    install_error_handlers(api)
    api.add_middleware(BodyLimit, limit=settings.api_max_body)
    # The webhook router comes first: its 4-segment paths must win over
    # /executions/{namespace}/{flowId}-style routes.
    routers = (routes_webhook.router, routes_executions.router, routes_logs.router,
               routes_flows.router, routes_triggers.router, routes_spark.router,
               routes_kv.router, _configs)
    for router in routers:
        api.include_router(router, prefix="/api/v1")
    for router in routers:
        api.include_router(router, prefix=_TENANT_PREFIX, include_in_schema=False)
    enable_metrics()
    api.include_router(routes_metrics.router)
    api.add_middleware(routes_metrics.WebhookMetrics)
    _install_docs(api)
    api.add_api_route("/healthz", _health, methods=["GET"], tags=["health"],
                      summary="UP when the store and the broker answer, 503 otherwise")
    return api


OPENAPI_URL = "/api/v1/openapi.json"


def _install_docs(api: FastAPI) -> None:
    """The OpenAPI document and Swagger UI, with the same credentials as the API
    (a browser asked for basic credentials on /docs sends them for the document)."""

    def openapi_document() -> JSONResponse:
        return JSONResponse(api.openapi())

    def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url=OPENAPI_URL, title=f"{api.title} - API")

    for path, endpoint in ((OPENAPI_URL, openapi_document), ("/docs", swagger_ui)):
        api.add_api_route(path, endpoint, methods=["GET"], include_in_schema=False,
                          dependencies=[Depends(require_auth)])


def _health(ctx: Ctx) -> JSONResponse:
    checks: dict[str, str] = {}
    try:
        ctx.store.ping()
        checks["store"] = "UP"
    except StoreUnavailable as exc:
        checks["store"] = f"DOWN: {exc}"
    # Executions are created in the store and then published: a broker that
    # cannot be used makes every submission fail, so the API is not healthy.
    problem = None if ctx.settings.embedded else broker_problem(ctx.celery_app, timeout=2.0)
    checks["broker"] = "UP" if problem is None else f"DOWN: {problem}"
    down = [f"{name} {value}" for name, value in checks.items() if value != "UP"]
    if down:
        return JSONResponse({"status": "DOWN", "checks": checks, "message": "; ".join(down)},
                            status_code=503)
    return JSONResponse({"status": "UP", "checks": checks})


_configs = APIRouter(tags=["configs"], dependencies=[Depends(require_auth)])


@_configs.get("/configs", summary="Server configuration, as Kestra's clients read it")
def configs(ctx: Ctx) -> dict[str, Any]:
    return {
        "version": _version(),
        "edition": "OSS",
        "server": "harrier",
        "isBasicAuthEnabled": auth_required(ctx.settings),
        "isTaskRunEnabled": False,
        "isAnonymousUsageEnabled": False,
        "isUiAnonymousUsageEnabled": False,
        "webhookMaxBody": min(ctx.settings.webhook_max_body, ctx.settings.api_max_body),
        "maxBody": ctx.settings.api_max_body,
    }
