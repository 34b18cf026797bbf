"""One body limit for every route (HARRIER_API_MAX_BODY): 413 with a message
naming the limit, whether the body declares its length or streams it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from harrier.scheduler.ui import create_web_app
from harrier.worker.runtime import Runtime

LIMIT = 64 * 1024


@pytest.fixture(scope="module")
def client(embedded: Runtime) -> Iterator[TestClient]:
    settings = embedded.settings.with_overrides(api_max_body=LIMIT)
    with TestClient(create_web_app(settings, embedded.store, embedded.app)) as test_client:
        yield test_client


def api_routes(routes: list[Any], prefix: str = "") -> Iterator[tuple[str, APIRoute]]:
    """Every APIRoute with its full path, through included routers."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield prefix + route.path, route
        original = getattr(route, "original_router", None)
        if original is not None:
            yield from api_routes(original.routes, prefix + route.include_context.prefix)


def routes_with_bodies(client: TestClient) -> list[tuple[str, str]]:
    found = []
    for path, route in api_routes(client.app.routes):  # type: ignore[attr-defined]
        for method in sorted(route.methods & {"POST", "PUT", "PATCH", "DELETE"}):
            found.append((method, re.sub(r"\{[^}]+\}", "x", path)))
    return found


def test_every_route_that_takes_a_body_is_enumerated(client: TestClient) -> None:
    paths = {path for _, path in routes_with_bodies(client)}
    for expected in ("/api/v1/executions/x/x", "/api/v1/flows", "/api/v1/flows/x/x",
                     "/api/v1/executions/webhook/x/x/x", "/api/v1/triggers",
                     "/ui/flows/x/x/run"):
        assert expected in paths


def test_every_route_refuses_a_body_over_the_limit(client: TestClient) -> None:
    body = b"{" + b" " * LIMIT + b"}"
    for method, path in routes_with_bodies(client):
        response = client.request(method, path, content=body,
                                  headers={"Content-Type": "application/json"})
        assert response.status_code == 413, (method, path, response.text)
        message = response.json()["message"]
        assert f"{LIMIT:,} bytes" in message and "HARRIER_API_MAX_BODY" in message


def test_a_streamed_body_without_length_is_refused_too(client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(LIMIT // 4096 + 2):
            yield b" " * 4096

    response = client.post("/api/v1/executions/any/flow", content=chunks(),
                           headers={"Content-Type": "application/json"})
    assert response.status_code == 413


def test_a_body_within_the_limit_reaches_the_route(client: TestClient) -> None:
    flow = ("id: small\nnamespace: limits\ninputs:\n  - id: x\n    type: FILE\n"
            "tasks:\n  - id: a\n    type: io.kestra.plugin.core.log.Log\n    message: hi\n")
    padded = flow + "#" + "x" * (LIMIT - len(flow) - 2) + "\n"
    assert len(padded) == LIMIT
    response = client.post("/api/v1/flows", content=padded,
                           headers={"Content-Type": "application/x-yaml"})
    assert response.status_code == 200, response.text
    form = client.post("/api/v1/executions/limits/small", files={"x": ("a.txt", b"1" * 1000)})
    assert form.status_code == 200, form.text
