"""API errors: every failure answers JSON {"message": ..., "details": [...]},
with Harrier's exceptions mapped to the status codes Kestra's clients expect."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import redis
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from harrier.common.errors import (
    ExecutionNotFound,
    FlowNotFound,
    FlowValidationError,
    HarrierError,
    IllegalTransition,
    InputError,
    StoreUnavailable,
    TemplateError,
)
from harrier.scheduler.control import ExecutionConflict, NothingToRestart

log = logging.getLogger(__name__)


class ApiError(HarrierError):
    """A request the API refuses, with the status and details to answer."""

    def __init__(self, status: int, message: str, details: Sequence[Mapping[str, Any]] = (),
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.details = [dict(d) for d in details]
        self.headers = dict(headers or {})


def error_response(status: int, message: str, details: Sequence[Mapping[str, Any]] = (),
                   headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"message": message, "details": [dict(d) for d in details]},
                        status_code=status, headers=dict(headers or {}))


def problem_details(exc: FlowValidationError) -> list[dict[str, Any]]:
    return [{"message": str(p), "source": p.source, "line": p.line, "column": p.column,
             "field": p.field} for p in exc.problems]


def input_details(exc: InputError) -> list[dict[str, Any]]:
    return [{"message": problem} for problem in exc.problems]


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.message, exc.details, exc.headers)


async def _not_found(request: Request, exc: Exception) -> JSONResponse:
    return error_response(404, str(exc))


async def _flow_invalid(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, FlowValidationError)
    count = len(exc.problems)
    return error_response(422, f"invalid flow ({count} problem{'s' * (count != 1)}):\n{exc}",
                          problem_details(exc))


async def _inputs_invalid(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, InputError)
    return error_response(422, "invalid inputs: " + "; ".join(exc.problems),
                          input_details(exc))


async def _unprocessable(request: Request, exc: Exception) -> JSONResponse:
    return error_response(422, str(exc))


async def _conflict(request: Request, exc: Exception) -> JSONResponse:
    return error_response(409, str(exc))


async def _unavailable(request: Request, exc: Exception) -> JSONResponse:
    message = str(exc) if isinstance(exc, StoreUnavailable) else (
        f"the Redis store is unreachable: {exc}")
    return error_response(503, message, headers={"Retry-After": "5"})


async def _harrier_error(request: Request, exc: Exception) -> JSONResponse:
    return error_response(400, str(exc))


async def _bad_request(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    details = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error.get("loc", ()))
        details.append({"message": f"{where}: {error.get('msg')}", "field": where})
    return error_response(400, "malformed request: " + "; ".join(d["message"] for d in details),
                          details)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    return error_response(exc.status_code, str(exc.detail), headers=exc.headers)


async def _internal(request: Request, exc: Exception) -> JSONResponse:
    # A bug, not a user mistake: log the traceback, answer without it.
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, f"internal error ({type(exc).__name__}); see the server log")


def install_error_handlers(app: FastAPI) -> None:
    handlers = {
        ApiError: _api_error,
        FlowNotFound: _not_found,
        ExecutionNotFound: _not_found,
        FlowValidationError: _flow_invalid,
        InputError: _inputs_invalid,
        TemplateError: _unprocessable,
        NothingToRestart: _unprocessable,
        ExecutionConflict: _conflict,
        IllegalTransition: _conflict,
        StoreUnavailable: _unavailable,
        redis.ConnectionError: _unavailable,
        redis.TimeoutError: _unavailable,
        HarrierError: _harrier_error,
        RequestValidationError: _bad_request,
        StarletteHTTPException: _http_error,
        Exception: _internal,
    }
    for exc_class, handler in handlers.items():
        app.add_exception_handler(exc_class, handler)
