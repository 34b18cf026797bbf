"""The API over a real Redis store: 503 with a message while redis-server is
down, and back to normal once it returns."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from celery import Celery
from fastapi.testclient import TestClient

from harrier.common.celery_app import configure_app
from harrier.common.redis_store import RedisStore
from harrier.common.settings import Settings
from harrier.scheduler.api import create_api
from tests.fixtures.redis_server import RedisServer, free_port

FLOW = """
id: stored
namespace: api.redis
tasks:
  - id: hi
    type: io.kestra.plugin.core.log.Log
    message: hi
"""
YAML = {"Content-Type": "application/x-yaml"}


@pytest.fixture
def client(redis_server: RedisServer, redis_client: object) -> Iterator[TestClient]:
    store = RedisStore.from_url(redis_server.url)
    # Nothing is enqueued here (the store fails first): an unconfigured app will do.
    app = Celery("api-redis-test")
    try:
        with TestClient(create_api(Settings(), store, app)) as test_client:
            yield test_client
    finally:
        store.close()
        redis_server.start()  # whatever the test did, leave the server up


def test_store_down_is_503_with_a_message_and_recovers(client: TestClient,
                                                       redis_server: RedisServer) -> None:
    assert client.get("/healthz").json()["status"] == "UP"
    assert client.post("/api/v1/flows", content=FLOW, headers=YAML).status_code == 200

    redis_server.stop()
    health = client.get("/healthz")
    assert health.status_code == 503 and health.json()["status"] == "DOWN"
    for response in (client.get("/api/v1/executions"),
                     client.get("/api/v1/flows/api.redis/stored"),
                     client.post("/api/v1/executions/api.redis/stored", json={}),
                     client.put("/api/v1/flows/api.redis/stored", content=FLOW, headers=YAML),
                     client.get("/api/v1/logs/some-id")):
        assert response.status_code == 503, response.text
        assert "Redis" in response.json()["message"]

    redis_server.start()  # no persistence: the data is gone, the service is not
    assert client.get("/healthz").json()["status"] == "UP"
    assert client.get("/api/v1/executions").json() == {"results": [], "total": 0}
    assert client.get("/api/v1/flows/api.redis/stored").status_code == 404


def test_healthz_is_503_naming_the_broker_when_it_cannot_be_used(
        redis_server: RedisServer, redis_client: object) -> None:
    # The store answers; the broker is a port where nothing listens.
    settings = Settings(broker_url=f"redis://127.0.0.1:{free_port()}/0",
                        store_url=redis_server.url)
    store = RedisStore.from_url(redis_server.url)
    try:
        with TestClient(create_api(settings, store, configure_app(settings))) as client:
            health = client.get("/healthz")
    finally:
        configure_app(Settings())  # leave the shared app embedded for other tests
        store.close()
    assert health.status_code == 503
    body = health.json()
    assert body["status"] == "DOWN"
    assert body["checks"]["store"] == "UP"
    assert body["checks"]["broker"].startswith("DOWN: ")
    assert "broker" in body["message"]
