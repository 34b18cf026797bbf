"""The web UI under /ui: server-rendered pages (Jinja2 templates and static
files in this package) behind the API's authentication."""

from __future__ import annotations

import inspect
import json
from typing import Any

from celery import Celery
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response

from harrier.common.settings import Settings
from harrier.common.store import ExecutionStore
from harrier.scheduler.api import create_api
from harrier.scheduler.api.auth import require_auth
from harrier.scheduler.api.errors import ApiError
from harrier.scheduler.ui import pages_executions, pages_flows, pages_workers
from harrier.scheduler.ui.rendering import STATIC_DIR, STATIC_FILES, page

_MEDIA_TYPES = {".css": "text/css", ".js": "text/javascript", ".svg": "image/svg+xml"}


def _static(name: str) -> FileResponse:
    # Only the files the package ships, by exact name: no path ever reaches the disk.
    if name not in STATIC_FILES:
        raise ApiError(404, f"no static file {name!r}")
    path = STATIC_DIR / name
    return FileResponse(path, media_type=_MEDIA_TYPES.get(path.suffix, "text/plain"),
                        headers={"Cache-Control": "private, max-age=31536000, immutable",
                                 "X-Content-Type-Options": "nosniff"})


def _home() -> RedirectResponse:
    return RedirectResponse("/ui/executions", status_code=307)


def _html_errors(app: FastAPI) -> None:
    """Errors on UI pages answer a page a person can read (same status and
    headers, so a 401 still carries its challenge); the API keeps its JSON."""
    def make(handler: Any) -> Any:
        async def wrapped(request: Request, exc: Exception) -> Response:
            response = handler(request, exc)
            if inspect.isawaitable(response):
                response = await response
            wants_html = "text/html" in request.headers.get("accept", "")
            if not (request.url.path.startswith("/ui/") and wants_html
                    and isinstance(response, JSONResponse)):
                return response
            message = json.loads(bytes(response.body)).get("message", "")
            html = page(request, "error.html", status_code=response.status_code,
                        status=response.status_code, message=message, nav="",
                        title=f"Error {response.status_code}")
            challenge = response.headers.get("www-authenticate")
            if challenge:
                html.headers["WWW-Authenticate"] = challenge
            return html
        return wrapped

    for exc_class, handler in list(app.exception_handlers.items()):
        app.add_exception_handler(exc_class, make(handler))


def create_web_app(settings: Settings, store: ExecutionStore, celery_app: Celery) -> FastAPI:
    """The API with the UI mounted under /ui: what `harrier api` and
    `harrier scheduler` serve."""
    app = create_api(settings, store, celery_app)
    install_ui(app)
    return app


def install_ui(app: FastAPI) -> None:
    """Mount the UI on the API app: every page and file needs the API's credentials."""
    _html_errors(app)
    router = APIRouter(prefix="/ui", dependencies=[Depends(require_auth)],
                       include_in_schema=False)
    router.add_api_route("", _home, methods=["GET"])
    router.add_api_route("/", _home, methods=["GET"])
    router.add_api_route("/static/{name}", _static, methods=["GET"])
    for module in (pages_executions, pages_flows, pages_workers):
        router.include_router(module.router)
    app.include_router(router)
