"""Creating, reading, searching, killing, restarting and deleting executions
through the API, and every bad request's status code."""

from __future__ import annotations

import time
from pathlib import Path

from tests.scheduler.api.conftest import Api, unique

GREET = """
id: {id}
namespace: api.test
inputs:
  - id: who
    type: STRING
  - id: times
    type: INT
    defaults: 1
tasks:
  - id: hello
    type: io.kestra.plugin.core.log.Log
    message: "hello {{{{ inputs.who }}}} x{{{{ inputs.times }}}}"
"""


def test_multipart_inputs_create_an_execution_that_succeeds(api: Api) -> None:
    flow_id = unique()
    api.push(GREET.format(id=flow_id))
    execution = api.run("api.test", flow_id, files={"who": (None, "Ada"), "times": (None, "3")})
    assert execution["state"]["current"] == "SUCCESS"
    assert execution["inputs"] == {"who": "Ada", "times": 3}
    assert execution["namespace"] == "api.test" and execution["flowId"] == flow_id
    assert execution["state"]["histories"][0]["state"] == "CREATED"
    assert [t["taskId"] for t in execution["taskRunList"]] == ["hello"]
    logs = api.client.get(f"/api/v1/logs/{execution['id']}").json()
    assert [e["message"] for e in logs] == ["hello Ada x3"]


def test_json_inputs_and_labels_are_accepted(api: Api) -> None:
    flow_id = unique()
    api.push(GREET.format(id=flow_id))
    execution = api.run("api.test", flow_id, json={"who": "Grace", "times": 2},
                        params={"wait": "true", "labels": ["team:data", "env:test"]})
    assert execution["state"]["current"] == "SUCCESS"
    assert {"key": "team", "value": "data"} in execution["labels"]
    assert {"key": "env", "value": "test"} in execution["labels"]


def test_without_wait_the_answer_comes_at_creation_and_get_shows_the_end(api: Api) -> None:
    flow_id = unique()
    api.push(GREET.format(id=flow_id))
    created = api.client.post(f"/api/v1/executions/api.test/{flow_id}",
                              data={"who": "Linus"})
    assert created.status_code == 200
    execution_id = created.json()["id"]
    api.runtime.store.wait_terminal(execution_id, 30)
    fetched = api.client.get(f"/api/v1/executions/{execution_id}").json()
    assert fetched["state"]["current"] == "SUCCESS"
    assert fetched["id"] == execution_id


def test_unknown_flow_is_404_json(api: Api) -> None:
    response = api.client.post("/api/v1/executions/api.test/nope", json={})
    assert response.status_code == 404
    assert "api.test.nope" in response.json()["message"]
    assert api.client.get("/api/v1/executions/doesnotexist").status_code == 404


def test_bad_inputs_are_422_naming_every_input_and_create_nothing(api: Api) -> None:
    flow_id = unique()
    api.push(GREET.format(id=flow_id))
    response = api.client.post(f"/api/v1/executions/api.test/{flow_id}",
                               data={"times": "many", "color": "red"})
    assert response.status_code == 422
    body = response.json()
    text = " ".join(d["message"] for d in body["details"])
    assert "'who'" in text and "'times'" in text and "'color'" in text
    assert len(body["details"]) == 3
    assert api.count("api.test", flow_id) == 0


def test_malformed_bodies_and_parameters_are_400(api: Api) -> None:
    flow_id = unique()
    api.push(GREET.format(id=flow_id))
    url = f"/api/v1/executions/api.test/{flow_id}"
    not_json = api.client.post(url, content=b"{who:", headers={"Content-Type":
                                                              "application/json"})
    assert not_json.status_code == 400 and "JSON" in not_json.json()["message"]
    array = api.client.post(url, json=["Ada"])
    assert array.status_code == 400
    label = api.client.post(url, json={"who": "x"}, params={"labels": "nocolon"})
    assert label.status_code == 400 and "nocolon" in label.text
    broken = api.client.post(url, content=b"not multipart at all", headers={
        "Content-Type": "multipart/form-data; boundary=xx"})
    assert broken.status_code == 400
    assert api.client.post(url, content=b"who=1", headers={
        "Content-Type": "text/csv"}).status_code == 415
    assert api.client.get("/api/v1/executions", params={"page": "zero"}).status_code == 400
    bad_state = api.client.get("/api/v1/executions", params={"state": "DONE"})
    assert bad_state.status_code == 400 and "SUCCESS" in bad_state.json()["message"]
    assert api.client.get("/api/v1/executions", params={
        "startDate": "yesterday"}).status_code == 400
    assert api.count("api.test", flow_id) == 0


def test_search_filters_by_flow_state_and_pages(api: Api) -> None:
    flow_id = unique()
    api.push(GREET.format(id=flow_id))
    ids = [api.run("api.test", flow_id, json={"who": str(n)})["id"] for n in range(3)]
    everything = api.client.get("/api/v1/executions/search", params={
        "namespace": "api.test", "flowId": flow_id}).json()
    assert everything["total"] == 3
    assert {e["id"] for e in everything["results"]} == set(ids)
    page = api.client.get("/api/v1/executions", params={
        "flowId": flow_id, "namespace": "api.test", "size": 2, "page": 2}).json()
    assert page["total"] == 3 and len(page["results"]) == 1
    failed = api.client.get("/api/v1/executions", params={
        "flowId": flow_id, "namespace": "api.test", "state": "FAILED"}).json()
    assert failed["total"] == 0
    future = api.client.get("/api/v1/executions", params={
        "namespace": "api.test", "flowId": flow_id,
        "startDate": "2999-01-01T00:00:00Z"}).json()
    assert future["total"] == 0


def test_kill_is_202_and_ends_killed_then_kill_again_is_409(api: Api) -> None:
    flow_id = unique()
    api.push(f"""
id: {flow_id}
namespace: api.test
tasks:
  - id: long
    type: io.kestra.plugin.scripts.shell.Commands
    commands: ["sleep 60"]
  - id: never
    type: io.kestra.plugin.core.log.Log
    message: should not run
""")
    execution_id = api.client.post(f"/api/v1/executions/api.test/{flow_id}").json()["id"]
    deadline = time.monotonic() + 30
    while not any(r.state.current.value == "RUNNING"
                  for r in api.runtime.store.task_runs(execution_id)):
        assert time.monotonic() < deadline, "the task never started"
        time.sleep(0.05)
    killed = api.client.delete(f"/api/v1/executions/{execution_id}/kill")
    assert killed.status_code == 202
    final = api.runtime.store.wait_terminal(execution_id, 30)
    assert final.state.current.value == "KILLED"
    assert [r.task_id for r in final.task_runs] == ["long"]
    again = api.client.delete(f"/api/v1/executions/{execution_id}/kill")
    assert again.status_code == 409 and "KILLED" in again.json()["message"]


def test_restart_reruns_a_failed_execution_and_refuses_a_successful_one(
        api: Api, tmp_path: Path) -> None:
    flag = tmp_path / "ok"
    flow_id = unique()
    api.push(f"""
id: {flow_id}
namespace: api.test
tasks:
  - id: flaky
    type: io.kestra.plugin.scripts.shell.Commands
    commands: ["test -e {flag}"]
""")
    failed = api.run("api.test", flow_id)
    assert failed["state"]["current"] == "FAILED"
    flag.touch()
    restarted = api.client.post(f"/api/v1/executions/{failed['id']}/restart")
    assert restarted.status_code == 200
    final = api.runtime.store.wait_terminal(failed["id"], 30)
    assert final.state.current.value == "SUCCESS"
    # As in Kestra: the failed task run gets a second attempt, not a new run.
    [flaky] = final.task_runs
    assert [a.state.current.value for a in flaky.attempts] == ["FAILED", "SUCCESS"]
    refused = api.client.post(f"/api/v1/executions/{failed['id']}/restart")
    assert refused.status_code == 422
    assert "No task found to restart" in refused.json()["message"]


def test_delete_removes_an_ended_execution(api: Api) -> None:
    flow_id = unique()
    api.push(GREET.format(id=flow_id))
    execution = api.run("api.test", flow_id, json={"who": "x"})
    assert api.client.delete(f"/api/v1/executions/{execution['id']}").status_code == 204
    assert api.client.get(f"/api/v1/executions/{execution['id']}").status_code == 404
    assert api.client.delete(f"/api/v1/executions/{execution['id']}").status_code == 404


def test_file_inputs_are_uploaded_and_passed_as_a_storage_uri(api: Api) -> None:
    flow_id = unique()
    api.push(f"""
id: {flow_id}
namespace: api.test
inputs:
  - id: data
    type: FILE
tasks:
  - id: show
    type: io.kestra.plugin.scripts.shell.Commands
    commands: ["cat {{{{ inputs.data }}}}"]
""")
    execution = api.run("api.test", flow_id,
                        files={"data": ("../../evil name.csv", b"a,b\n1,2\n", "text/csv")})
    assert execution["state"]["current"] == "SUCCESS"
    # Stored as Kestra names it; only the file name's last component is kept.
    assert execution["inputs"]["data"] == (
        f"kestra:///api/test/{flow_id}/executions/{execution['id']}/inputs/data/evil%20name.csv")
    logs = api.client.get(f"/api/v1/logs/{execution['id']}").json()
    assert [e["message"] for e in logs] == ["a,b", "1,2"]


def test_a_disabled_flow_cannot_be_executed(api: Api) -> None:
    flow_id = unique()
    api.push(GREET.format(id=flow_id) + "disabled: true\n")
    response = api.client.post(f"/api/v1/executions/api.test/{flow_id}", json={"who": "x"})
    assert response.status_code == 422 and "disabled" in response.json()["message"]


def test_kestra_main_tenant_paths_and_configs_answer(api: Api) -> None:
    flow_id = unique()
    api.push(GREET.format(id=flow_id))
    created = api.client.post(f"/api/v1/main/executions/api.test/{flow_id}",
                              params={"wait": "true"}, files={"who": (None, "tenant")})
    assert created.status_code == 200 and created.json()["state"]["current"] == "SUCCESS"
    fetched = api.client.get(f"/api/v1/main/executions/{created.json()['id']}")
    assert fetched.json()["inputs"]["who"] == "tenant"
    assert api.client.get("/api/v1/configs").json()["isBasicAuthEnabled"] is False
    assert api.client.get("/healthz").json()["status"] == "UP"


def test_secret_inputs_are_masked_by_the_api(api: Api) -> None:
    flow_id = unique()
    api.push(f"""
id: {flow_id}
namespace: api.test
inputs:
  - {{id: token, type: SECRET}}
tasks:
  - {{id: use, type: io.kestra.plugin.core.log.Log, message: "token {{{{ inputs.token }}}}"}}
""")
    execution = api.run("api.test", flow_id, files={"token": (None, "tok-123456")})
    assert execution["state"]["current"] == "SUCCESS"
    assert execution["inputs"] == {"token": "******"}
    again = api.client.get(f"/api/v1/executions/{execution['id']}").json()
    assert again["inputs"] == {"token": "******"}
    found = api.client.get("/api/v1/executions/search", params={"flowId": flow_id}).json()
    assert found["results"][0]["inputs"] == {"token": "******"}
    logs = api.client.get(f"/api/v1/logs/{execution['id']}").json()
    assert [e["message"] for e in logs] == ["token ******"]
