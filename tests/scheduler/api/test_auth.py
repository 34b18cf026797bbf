"""Optional API authentication: basic and bearer credentials checked on the
API, while /healthz and webhooks stay open."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from harrier.common.settings import Settings, SettingsError
from harrier.scheduler.api import create_api
from harrier.scheduler.api.auth import check_exposure
from harrier.worker.runtime import Runtime
from tests.scheduler.api.conftest import unique

HOOK = """
id: {id}
namespace: api.auth
tasks:
  - id: hi
    type: io.kestra.plugin.core.log.Log
    message: hi
triggers:
  - id: hook
    type: io.kestra.plugin.core.trigger.Webhook
    key: thekey
"""


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


@pytest.fixture(scope="module")
def secured(embedded: Runtime) -> Iterator[TestClient]:
    settings = embedded.settings.with_overrides(api_username="admin", api_password="pa:ss",
                                                api_token="tok-123")
    with TestClient(create_api(settings, embedded.store, embedded.app)) as client:
        yield client


def test_api_without_credentials_is_401_with_a_challenge(secured: TestClient) -> None:
    response = secured.get("/api/v1/executions")
    assert response.status_code == 401
    assert "Basic" in response.headers["www-authenticate"]
    assert "Bearer" in response.headers["www-authenticate"]
    assert response.json()["message"].startswith("authentication required")


def test_wrong_credentials_are_401(secured: TestClient) -> None:
    for headers in (basic("admin", "wrong"), basic("root", "pa:ss"),
                    {"Authorization": "Bearer tok-1234"}, {"Authorization": "Basic !!!"},
                    {"Authorization": "Digest x"}):
        assert secured.get("/api/v1/flows", headers=headers).status_code == 401, headers


def test_basic_credentials_and_bearer_token_are_accepted(secured: TestClient) -> None:
    assert secured.get("/api/v1/flows", headers=basic("admin", "pa:ss")).status_code == 200
    assert secured.get("/api/v1/executions",
                       headers={"Authorization": "Bearer tok-123"}).status_code == 200


def test_health_and_webhooks_stay_open(secured: TestClient) -> None:
    assert secured.get("/healthz").json()["status"] == "UP"
    flow_id = unique()
    pushed = secured.post("/api/v1/flows", content=HOOK.format(id=flow_id),
                          headers={**basic("admin", "pa:ss"),
                                   "Content-Type": "application/x-yaml"})
    assert pushed.status_code == 200
    hooked = secured.post(f"/api/v1/executions/webhook/api.auth/{flow_id}/thekey")
    assert hooked.status_code == 200 and hooked.json()["id"]


def test_a_username_without_a_password_is_refused_at_start(embedded: Runtime) -> None:
    settings = embedded.settings.with_overrides(api_username="admin", api_password="")
    with pytest.raises(SettingsError, match="together"):
        create_api(settings, embedded.store, embedded.app)


def test_openapi_document_and_docs_need_the_credentials(secured: TestClient) -> None:
    for path in ("/api/v1/openapi.json", "/docs"):
        assert secured.get(path).status_code == 401, path
        assert secured.get(path, headers=basic("admin", "pa:ss")).status_code == 200, path
    assert "swagger" in secured.get("/docs", headers=basic("admin", "pa:ss")).text.lower()


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"])
def test_loopback_without_credentials_is_served(embedded: Runtime, host: str) -> None:
    check_exposure(embedded.settings, host, 8080)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.1.2.3", "harrier.example.com"])
def test_beyond_loopback_without_credentials_is_refused(embedded: Runtime, host: str) -> None:
    with pytest.raises(SettingsError, match="without authentication") as raised:
        check_exposure(embedded.settings, host, 8080)
    for remedy in ("HARRIER_API_PASSWORD", "HARRIER_API_TOKEN", "127.0.0.1",
                   "HARRIER_API_AUTH=none"):
        assert remedy in str(raised.value)


def test_beyond_loopback_with_credentials_is_served(embedded: Runtime) -> None:
    check_exposure(embedded.settings.with_overrides(api_token="t"), "0.0.0.0", 8080)


def test_opting_out_is_served_with_a_warning(embedded: Runtime,
                                             caplog: pytest.LogCaptureFixture) -> None:
    check_exposure(embedded.settings.with_overrides(api_auth="none"), "0.0.0.0", 8080)
    assert "HARRIER_API_AUTH=none" in caplog.text and "WARNING" in caplog.text


def test_opting_out_while_giving_credentials_is_refused(embedded: Runtime) -> None:
    settings = embedded.settings.with_overrides(api_auth="none", api_token="t")
    with pytest.raises(SettingsError, match="unset one or the other"):
        check_exposure(settings, "127.0.0.1", 8080)


def test_an_unknown_auth_mode_is_refused() -> None:
    with pytest.raises(SettingsError, match="HARRIER_API_AUTH"):
        Settings.from_env({"HARRIER_API_AUTH": "off"})
    assert Settings.from_env({"HARRIER_API_AUTH": "None"}).api_auth == "none"


def test_openapi_document_lists_the_kestra_paths(secured: TestClient) -> None:
    paths = secured.get("/api/v1/openapi.json", headers=basic("admin", "pa:ss")).json()["paths"]
    for path in ("/api/v1/executions/{namespace}/{flow_id}", "/api/v1/executions/search",
                 "/api/v1/logs/{execution_id}/download", "/api/v1/flows/{namespace}/{flow_id}",
                 "/api/v1/executions/webhook/{namespace}/{flow_id}/{key}"):
        assert path in paths
