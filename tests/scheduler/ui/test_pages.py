"""The UI's server side over a whole embedded Harrier, through FastAPI's
TestClient: pages, their security headers, the Run form's inline errors,
form posts from other sites, log windows and masked secrets. The browser
journeys are in tests/ui."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from harrier.scheduler.ui import create_web_app
from harrier.worker.runtime import Runtime
from tests.scheduler.api.conftest import unique

FLOW = """id: {id}
namespace: ui.pages
inputs:
  - id: count
    type: INT
    max: 10
  - id: password
    type: SECRET
  - id: loud
    type: BOOLEAN
    defaults: false
tasks:
  - id: talk
    type: io.kestra.plugin.scripts.shell.Commands
    commands:
      - for i in $(seq 1 {{{{ inputs.count }}}}); do echo "line $i"; done
"""
HTML = {"Accept": "text/html"}
SAME_SITE = {"Origin": "http://testserver"}


@pytest.fixture(scope="module")
def ui(embedded: Runtime) -> Iterator[TestClient]:
    with TestClient(create_web_app(embedded.settings, embedded.store, embedded.app)) as client:
        yield client


@pytest.fixture
def flow_id(ui: TestClient) -> str:
    name = unique()
    response = ui.post("/api/v1/flows", content=FLOW.format(id=name),
                       headers={"Content-Type": "application/x-yaml"})
    assert response.status_code == 200, response.text
    return name


def _run(ui: TestClient, flow_id: str, **fields: str) -> str:
    response = ui.post(f"/ui/flows/ui.pages/{flow_id}/run", data=fields, headers=SAME_SITE,
                       follow_redirects=False)
    assert response.status_code == 303, response.text
    return response.headers["location"].rsplit("/", 1)[-1]


def test_pages_answer_with_a_strict_content_security_policy(ui: TestClient,
                                                            flow_id: str) -> None:
    for path in ("/ui/executions", "/ui/flows", f"/ui/flows/ui.pages/{flow_id}",
                 "/ui/workers"):
        response = ui.get(path)
        assert response.status_code == 200, path
        policy = response.headers["content-security-policy"]
        assert "default-src 'self'" in policy and "script-src 'self'" in policy
        assert "frame-ancestors 'none'" in policy
        assert "<script>" not in response.text  # no inline script: only files from /ui/static
    assert "Embedded mode" in ui.get("/ui/workers").text
    assert ui.get("/ui", follow_redirects=False).headers["location"] == "/ui/executions"


def test_static_files_are_the_packaged_ones_only(ui: TestClient) -> None:
    response = ui.get("/ui/static/log_view.js")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/javascript")
    assert "immutable" in response.headers["cache-control"]
    for path in ("/ui/static/nope.js", "/ui/static/..%2F__init__.py",
                 "/ui/static/%2E%2E%2Frendering.py"):
        assert ui.get(path).status_code == 404, path


def test_errors_are_pages_for_browsers_and_json_for_api_clients(ui: TestClient) -> None:
    page = ui.get("/ui/executions/nope", headers=HTML)
    assert page.status_code == 404 and page.headers["content-type"].startswith("text/html")
    assert "execution nope not found" in page.text
    api = ui.get("/ui/executions/nope")
    assert api.status_code == 404 and api.json()["message"] == "execution nope not found"


def test_the_run_form_shows_each_bad_input_beside_its_field_and_runs_nothing(
        ui: TestClient, flow_id: str) -> None:
    before = ui.get("/api/v1/executions", params={"flowId": flow_id,
                                                  "namespace": "ui.pages"}).json()["total"]
    response = ui.post(f"/ui/flows/ui.pages/{flow_id}/run",
                       data={"count": "11", "password": "", "loud": ["false", "true"]},
                       headers=SAME_SITE, follow_redirects=False)
    assert response.status_code == 422
    text = response.text
    assert 'id="err-count"' in text and "input &#39;count&#39;" in text
    assert 'id="err-password"' in text and "required" in text
    assert 'aria-invalid="true"' in text
    after = ui.get("/api/v1/executions", params={"flowId": flow_id,
                                                 "namespace": "ui.pages"}).json()["total"]
    assert after == before


def test_the_run_form_starts_an_execution_and_its_page_masks_the_secret(
        ui: TestClient, flow_id: str, embedded: Runtime) -> None:
    execution_id = _run(ui, flow_id, count="3", password="hunter2", loud="false")
    embedded.store.wait_terminal(execution_id, 30)
    page = ui.get(f"/ui/executions/{execution_id}")
    assert page.status_code == 200
    assert "hunter2" not in page.text and "******" in page.text
    stored = ui.get(f"/api/v1/executions/{execution_id}").json()
    assert stored["inputs"]["count"] == 3 and stored["trigger"] == {"type": "api", "id": "ui"}


def test_a_form_posted_from_another_site_is_refused(ui: TestClient, flow_id: str) -> None:
    for headers in ({"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"}):
        response = ui.post(f"/ui/flows/ui.pages/{flow_id}/run", data={"count": "1"},
                           headers=headers, follow_redirects=False)
        assert response.status_code == 403, headers
    # A client that is not a browser (no Origin, no Sec-Fetch-Site) cannot be tricked.
    response = ui.post(f"/ui/flows/ui.pages/{flow_id}/run",
                       data={"count": "1", "password": "x"}, follow_redirects=False)
    assert response.status_code == 303


def test_log_windows_page_backwards_from_the_newest_line(ui: TestClient, flow_id: str,
                                                         embedded: Runtime) -> None:
    execution_id = _run(ui, flow_id, count="9", password="x")
    embedded.store.wait_terminal(execution_id, 30)
    newest = ui.get(f"/ui/executions/{execution_id}/logs", params={"limit": 3}).json()
    assert [row[6] for row in newest["entries"]] == ["line 7", "line 8", "line 9"]
    assert newest["more"] is True
    older = ui.get(f"/ui/executions/{execution_id}/logs",
                   params={"limit": 100, "before": newest["entries"][0][0]}).json()
    assert [row[6] for row in older["entries"]][-2:] == ["line 5", "line 6"]
    assert older["more"] is False
    assert ui.get(f"/ui/executions/{execution_id}/logs",
                  params={"before": "x;y"}).status_code == 400


def test_the_list_says_what_is_wrong_with_a_filter(ui: TestClient) -> None:
    response = ui.get("/ui/executions", params={"state": "DONE", "label": "nocolon",
                                                "from": "yesterday"})
    assert response.status_code == 200
    for problem in ("unknown state &#39;DONE&#39;", "label &#39;nocolon&#39;: expected key:value",
                    "From: &#39;yesterday&#39; is not a date"):
        assert problem in response.text


def test_the_executions_list_filters_by_flow_and_label(ui: TestClient, flow_id: str,
                                                       embedded: Runtime) -> None:
    execution_id = _run(ui, flow_id, count="1", password="x")
    embedded.store.wait_terminal(execution_id, 30)
    found = ui.get("/ui/executions", params={"namespace": "ui.pages", "flowId": flow_id,
                                             "partial": "true"})
    assert execution_id[:8] in found.text and "1 execution" in found.text
    assert execution_id[:8] not in ui.get("/ui/executions", params={
        "namespace": "ui.pages", "flowId": flow_id, "label": "team:nobody"}).text


def test_run_again_starts_a_new_execution_with_the_same_inputs(
        ui: TestClient, flow_id: str, embedded: Runtime) -> None:
    first = _run(ui, flow_id, count="2", password="s3", loud="true")
    embedded.store.wait_terminal(first, 30)
    response = ui.post(f"/ui/executions/{first}/rerun", headers=SAME_SITE,
                       follow_redirects=False)
    assert response.status_code == 303
    second = response.headers["location"].rsplit("/", 1)[-1]
    assert second != first
    inputs = [ui.get(f"/api/v1/executions/{e}").json()["inputs"] for e in (first, second)]
    assert inputs[0] == inputs[1] and inputs[1]["count"] == 2 and inputs[1]["loud"] is True


def test_killing_the_driver_of_a_task_that_submitted_none_is_a_conflict(
        ui: TestClient, flow_id: str, embedded: Runtime) -> None:
    execution_id = _run(ui, flow_id, count="1", password="x")
    execution = embedded.store.wait_terminal(execution_id, 30)
    run_id = execution.task_runs[0].id
    response = ui.delete(f"/api/v1/executions/{execution_id}/taskruns/{run_id}/spark-driver")
    assert response.status_code == 409
    assert "has not submitted a Spark driver" in response.json()["message"]
    missing = ui.delete(f"/api/v1/executions/{execution_id}/taskruns/nope/spark-driver")
    assert missing.status_code == 404


def test_descriptions_are_shown_on_the_flow_page(ui: TestClient) -> None:
    flow_id = f"described{uuid.uuid4().hex[:8]}"
    pushed = ui.post("/api/v1/flows", headers={"Content-Type": "application/x-yaml"},
                     content=f"""id: {flow_id}
namespace: api.test
description: Loads the daily files
inputs:
  - {{id: day, type: DATE, displayName: Business day, description: the day to load}}
tasks:
  - {{id: t, type: io.kestra.plugin.core.log.Log, message: hi, description: says hi}}
triggers:
  - {{id: h, type: io.kestra.plugin.core.trigger.Schedule, cron: "@hourly", disabled: true,
      description: fires hourly}}
""")
    assert pushed.status_code == 200, pushed.text
    page = ui.get(f"/ui/flows/api.test/{flow_id}").text
    assert "Loads the daily files" in page
    assert "Business day" in page and "the day to load" in page
    # Task, trigger and output descriptions are documentation: the page shows
    # them in the flow's source.
    assert "says hi" in page and "fires hourly" in page


def test_parent_and_subflow_executions_link_to_each_other(ui: TestClient) -> None:
    child, parent = unique("child"), unique("parent")
    for text in (f"id: {child}\nnamespace: ui.pages\ntasks:\n  - id: t\n"
                 "    type: io.kestra.plugin.core.log.Log\n    message: hi\n",
                 f"id: {parent}\nnamespace: ui.pages\ntasks:\n  - id: call\n"
                 "    type: io.kestra.plugin.core.flow.Subflow\n    namespace: ui.pages\n"
                 f"    flowId: {child}\n"):
        assert ui.post("/api/v1/flows", content=text,
                       headers={"Content-Type": "application/x-yaml"}).status_code == 200
    done = ui.post(f"/api/v1/executions/ui.pages/{parent}", params={"wait": "true"}).json()
    assert done["state"]["current"] == "SUCCESS"
    child_id = done["taskRunList"][0]["outputs"]["executionId"]
    parent_page = ui.get(f"/ui/executions/{done['id']}", headers=HTML).text
    assert f'href="/ui/executions/{child_id}"' in parent_page
    child_page = ui.get(f"/ui/executions/{child_id}", headers=HTML).text
    assert f'id="parent-link" href="/ui/executions/{done["id"]}"' in child_page
    assert f"ui.pages.{parent}" in child_page


def test_a_loop_and_its_iteration_executions_link_to_each_other(ui: TestClient) -> None:
    flow_id = unique("loop")
    text = (f"id: {flow_id}\nnamespace: ui.pages\ntasks:\n  - id: days\n"
            "    type: io.kestra.plugin.core.flow.Loop\n    values: [mon, tue]\n    tasks:\n"
            "      - {id: t, type: io.kestra.plugin.core.log.Log, message: '{{ item.value }}'}\n")
    assert ui.post("/api/v1/flows", content=text,
                   headers={"Content-Type": "application/x-yaml"}).status_code == 200
    done = ui.post(f"/api/v1/executions/ui.pages/{flow_id}", params={"wait": "true"}).json()
    assert done["state"]["current"] == "SUCCESS"
    loop_run = done["taskRunList"][0]["id"]
    parent_page = ui.get(f"/ui/executions/{done['id']}", headers=HTML).text
    for index in (0, 1):
        assert f'href="/ui/executions/{loop_run}{index}">days [iteration {index}]' in parent_page
    child_page = ui.get(f"/ui/executions/{loop_run}1", headers=HTML).text
    assert f'id="parent-link" href="/ui/executions/{done["id"]}"' in child_page
    assert "(iteration 1 of days)" in child_page


def test_a_file_field_left_empty_is_no_file_and_resume_of_an_ended_execution_is_refused(
        ui: TestClient, embedded: Runtime) -> None:
    name = unique()
    assert ui.post("/api/v1/flows", content=f"""id: {name}
namespace: ui.pages
inputs:
  - {{id: doc, type: FILE, required: false}}
tasks:
  - {{id: show, type: io.kestra.plugin.core.debug.Return, format: "[{{{{ inputs.doc }}}}]"}}
""", headers={"Content-Type": "application/x-yaml"}).status_code == 200
    # What a browser sends for a file field with no file chosen.
    response = ui.post(f"/ui/flows/ui.pages/{name}/run", files={"doc": ("", b"")},
                       headers=SAME_SITE, follow_redirects=False)
    assert response.status_code == 303, response.text
    execution_id = response.headers["location"].rsplit("/", 1)[-1]
    done = embedded.store.wait_terminal(execution_id, 30)
    assert done.inputs.get("doc") is None
    assert done.task_runs[0].outputs["value"] == "[]"
    # Its page has no Resume form; resuming it from the page says why not.
    assert 'id="resume-panel"' not in ui.get(f"/ui/executions/{execution_id}").text
    refused = ui.post(f"/ui/executions/{execution_id}/resume", data={}, headers=SAME_SITE,
                      follow_redirects=False)
    assert refused.status_code == 409
    assert 'id="resume-errors"' in refused.text and "is not paused" in refused.text
