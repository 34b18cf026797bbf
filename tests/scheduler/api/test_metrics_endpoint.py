"""GET /metrics on the API of an embedded Harrier: the in-process worker's
metrics are there too, and API credentials protect it like the API."""

from __future__ import annotations

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from harrier.scheduler.api import create_api
from tests.scheduler.api.conftest import unique

FLOW = """
id: {id}
namespace: api.metrics
tasks:
  - id: answer
    type: io.kestra.plugin.core.debug.Return
    format: "42"
"""


def value(text: str, name: str, **labels: str) -> float:
    return sum(s.value for family in text_string_to_metric_families(text)
               for s in family.samples
               if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))


def test_embedded_api_metrics_include_the_in_process_worker(api):
    flow_id = unique()
    api.push(FLOW.format(id=flow_id))
    assert api.run("api.metrics", flow_id)["state"]["current"] == "SUCCESS"
    response = api.client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    mine = {"namespace_id": "api.metrics", "flow_id": flow_id}
    assert value(response.text, "kestra_executor_execution_started_count_total", **mine,
                 trigger_type="api") == 1
    assert value(response.text, "kestra_executor_execution_end_count_total", **mine,
                 state="SUCCESS") == 1


def test_metrics_need_the_api_credentials_when_set(embedded):
    settings = embedded.settings.with_overrides(api_token="tok-metrics")
    with TestClient(create_api(settings, embedded.store, embedded.app)) as client:
        assert client.get("/metrics").status_code == 401
        answer = client.get("/metrics", headers={"Authorization": "Bearer tok-metrics"})
        assert answer.status_code == 200 and "kestra_" in answer.text
