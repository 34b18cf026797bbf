"""Safe by default, against real `harrier scheduler` / `harrier api` processes:
no open API beyond loopback, every page and document behind the credentials,
webhooks keyed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.fixtures.api_server import (
    ROOT,
    ApiServer,
    harrier_env,
    start_scheduler,
    stop,
    wait_healthy,
)
from tests.fixtures.redis_server import RedisServer, free_port

HOOK = """
id: hooked
namespace: sec.tests
tasks:
  - id: hi
    type: io.kestra.plugin.core.log.Log
    message: hi
triggers:
  - id: hook
    type: io.kestra.plugin.core.trigger.Webhook
    key: the-key-123
"""


def test_scheduler_beyond_loopback_without_credentials_refuses_to_start(
        redis_server: RedisServer, tmp_path: Path) -> None:
    env = harrier_env(redis_server.url, tmp_path, HARRIER_API_HOST="0.0.0.0",
                      HARRIER_API_PORT=str(free_port()))
    done = subprocess.run([sys.executable, "-m", "harrier", "scheduler"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "without authentication" in done.stderr
    assert "HARRIER_API_AUTH=none" in done.stderr


def test_embedded_api_beyond_loopback_without_credentials_refuses_to_start(
        tmp_path: Path) -> None:
    env = {k: v for k, v in harrier_env("", tmp_path).items() if not k.startswith("HARRIER_B")}
    env.update(HARRIER_API_HOST="0.0.0.0", HARRIER_API_PORT=str(free_port()))
    done = subprocess.run([sys.executable, "-m", "harrier", "api"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "without authentication" in done.stderr


def test_opting_out_serves_an_open_api_and_warns_at_start(
        redis_server: RedisServer, tmp_path: Path) -> None:
    port = free_port()
    env = harrier_env(redis_server.url, tmp_path, HARRIER_API_HOST="0.0.0.0",
                      HARRIER_API_PORT=str(port), HARRIER_API_AUTH="none")
    server = ApiServer(f"http://127.0.0.1:{port}", start_scheduler(env, tmp_path / "log"),
                       tmp_path / "log")
    try:
        wait_healthy(server)
        assert httpx.get(f"{server.url}/api/v1/flows", timeout=10).status_code == 200
        assert "WARNING" in server.log() and "HARRIER_API_AUTH=none" in server.log()
    finally:
        stop(server.process)


@pytest.mark.parametrize("path", ["/api/v1/flows", "/api/v1/executions", "/api/v1/configs",
                                  "/api/v1/openapi.json", "/docs", "/ui", "/ui/flows",
                                  "/api/v1/main/flows"])
def test_every_page_and_document_needs_the_credentials(api_server: ApiServer, path: str
                                                       ) -> None:
    anonymous = httpx.get(f"{api_server.url}{path}", timeout=30)
    assert anonymous.status_code == 401, path
    assert "Basic" in anonymous.headers["www-authenticate"]
    with api_server.client() as client:
        assert client.get(path, follow_redirects=True).status_code == 200, path


def test_health_is_open_and_webhooks_need_only_their_key(api_server: ApiServer) -> None:
    assert httpx.get(f"{api_server.url}/healthz", timeout=30).status_code == 200
    with api_server.client() as client:
        pushed = client.post("/api/v1/flows", content=HOOK,
                             headers={"Content-Type": "application/x-yaml"})
        assert pushed.status_code == 200, pushed.text
    base = f"{api_server.url}/api/v1/executions/webhook/sec.tests/hooked"
    assert httpx.post(f"{base}/wrong-key", timeout=30).status_code == 404
    hooked = httpx.post(f"{base}/the-key-123", json={"a": 1}, timeout=30)
    assert hooked.status_code == 200 and hooked.json()["id"]
