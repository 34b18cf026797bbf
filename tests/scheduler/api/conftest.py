"""The API over a whole embedded Harrier (in-memory store, in-process worker),
driven through FastAPI's TestClient."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient

from harrier.scheduler.api import create_api
from harrier.worker.runtime import Runtime


@dataclass
class Api:
    client: TestClient
    runtime: Runtime

    def push(self, text: str) -> dict:
        response = self.client.post("/api/v1/flows", content=text,
                                    headers={"Content-Type": "application/x-yaml"})
        assert response.status_code == 200, response.text
        return response.json()

    def run(self, namespace: str, flow_id: str, **kwargs: Any) -> dict:
        """Create an execution and wait for its end (?wait=true)."""
        params = {"wait": "true", **kwargs.pop("params", {})}
        response = self.client.post(f"/api/v1/executions/{namespace}/{flow_id}",
                                    params=params, **kwargs)
        assert response.status_code == 200, response.text
        return response.json()

    def count(self, namespace: str, flow_id: str) -> int:
        return self.client.get("/api/v1/executions", params={
            "namespace": namespace, "flowId": flow_id}).json()["total"]


def unique(prefix: str = "f") -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="module")
def api(embedded: Runtime) -> Iterator[Api]:
    app = create_api(embedded.settings, embedded.store, embedded.app)
    with TestClient(app) as client:
        yield Api(client, embedded)
