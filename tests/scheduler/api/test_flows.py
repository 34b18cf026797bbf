"""Flows through the API: YAML bodies, revisions, validation problems with
their location, and Kestra's POST-creates / PUT-updates rule."""

from __future__ import annotations

from tests.scheduler.api.conftest import Api, unique

FLOW = """id: {id}
namespace: api.flows
labels:
  team: data
tasks:
  - id: say
    type: io.kestra.plugin.core.log.Log
    message: {message}
"""
YAML = {"Content-Type": "application/x-yaml"}


def test_post_creates_revision_1_and_get_returns_kestra_shape(api: Api) -> None:
    flow_id = unique()
    created = api.push(FLOW.format(id=flow_id, message="one"))
    assert created["revision"] == 1
    fetched = api.client.get(f"/api/v1/flows/api.flows/{flow_id}").json()
    assert fetched["id"] == flow_id and fetched["namespace"] == "api.flows"
    assert fetched["tasks"] == [{"id": "say", "type": "io.kestra.plugin.core.log.Log",
                                 "message": "one"}]
    assert fetched["labels"] == [{"key": "team", "value": "data"}]
    assert fetched["source"] == FLOW.format(id=flow_id, message="one")
    assert fetched["disabled"] is False


def test_post_of_an_existing_flow_is_409_and_put_adds_a_revision(api: Api) -> None:
    flow_id = unique()
    api.push(FLOW.format(id=flow_id, message="one"))
    again = api.client.post("/api/v1/flows", content=FLOW.format(id=flow_id, message="x"),
                            headers=YAML)
    assert again.status_code == 409 and "PUT" in again.json()["message"]
    updated = api.client.put(f"/api/v1/flows/api.flows/{flow_id}",
                             content=FLOW.format(id=flow_id, message="two"), headers=YAML)
    assert updated.status_code == 200 and updated.json()["revision"] == 2
    revisions = api.client.get(f"/api/v1/flows/api.flows/{flow_id}/revisions").json()
    assert [r["revision"] for r in revisions] == [1, 2]
    first = api.client.get(f"/api/v1/flows/api.flows/{flow_id}", params={"revision": 1})
    assert first.json()["tasks"][0]["message"] == "one"
    assert api.client.get(f"/api/v1/flows/api.flows/{flow_id}",
                          params={"revision": 9}).status_code == 404


def test_put_must_name_the_same_flow_as_the_path_and_an_existing_one(api: Api) -> None:
    flow_id = unique()
    api.push(FLOW.format(id=flow_id, message="one"))
    moved = api.client.put(f"/api/v1/flows/api.flows/{flow_id}",
                           content=FLOW.format(id="other", message="x"), headers=YAML)
    assert moved.status_code == 422
    assert moved.json()["details"][0]["field"] == "id"
    missing = api.client.put("/api/v1/flows/api.flows/absent",
                             content=FLOW.format(id="absent", message="x"), headers=YAML)
    assert missing.status_code == 404


def test_invalid_flow_is_422_with_line_column_and_field(api: Api) -> None:
    text = "id: broken\nnamespace: api.flows\ntasks:\n  - id: a\n    type: no.such.Task\n"
    response = api.client.post("/api/v1/flows", content=text, headers=YAML)
    assert response.status_code == 422
    problem = response.json()["details"][0]
    assert (problem["line"], problem["column"], problem["field"]) == (5, 5, "tasks[0].type")
    assert "unknown task type" in problem["message"]
    assert api.client.get("/api/v1/flows/api.flows/broken").status_code == 404


def test_unreadable_bodies_are_400(api: Api) -> None:
    assert api.client.post("/api/v1/flows", content=b"", headers=YAML).status_code == 400
    assert api.client.post("/api/v1/flows", content=b"\xff\xfe",
                           headers=YAML).status_code == 400
    syntax = api.client.post("/api/v1/flows", content="id: [unclosed", headers=YAML)
    assert syntax.status_code == 422 and syntax.json()["details"][0]["line"] is not None


def test_validate_reports_each_document_without_storing(api: Api) -> None:
    flow_id = unique()
    text = FLOW.format(id=flow_id, message="ok") + "---\nid: bad\nnamespace: api.flows\n"
    results = api.client.post("/api/v1/flows/validate", content=text, headers=YAML).json()
    assert [r["flow"] for r in results] == [flow_id, "bad"]
    assert results[0]["constraints"] is None
    assert "tasks" in results[1]["constraints"]
    assert api.client.get(f"/api/v1/flows/api.flows/{flow_id}").status_code == 404


def test_list_search_and_delete(api: Api) -> None:
    flow_id = unique()
    api.push(FLOW.format(id=flow_id, message="one").replace("api.flows", "api.listing"))
    listed = api.client.get("/api/v1/flows").json()
    assert any(f["id"] == flow_id for f in listed)
    in_namespace = api.client.get("/api/v1/flows/api.listing").json()
    assert [f["id"] for f in in_namespace] == [flow_id]
    found = api.client.get("/api/v1/flows/search", params={"q": flow_id}).json()
    assert found["total"] == 1 and found["results"][0]["id"] == flow_id
    assert api.client.delete(f"/api/v1/flows/api.listing/{flow_id}").status_code == 204
    assert api.client.get(f"/api/v1/flows/api.listing/{flow_id}").status_code == 404
    assert api.client.delete(f"/api/v1/flows/api.listing/{flow_id}").status_code == 404


def test_a_pushed_flow_runs_its_latest_revision(api: Api) -> None:
    flow_id = unique()
    api.push(FLOW.format(id=flow_id, message="one"))
    api.client.put(f"/api/v1/flows/api.flows/{flow_id}",
                   content=FLOW.format(id=flow_id, message="two"), headers=YAML)
    execution = api.run("api.flows", flow_id)
    assert execution["flowRevision"] == 2
    logs = api.client.get(f"/api/v1/logs/{execution['id']}").json()
    assert [e["message"] for e in logs] == ["two"]


def test_a_revision_written_in_the_yaml_is_assigned_by_the_server(api: Api) -> None:
    flow_id = unique()
    created = api.push("revision: 42\n" + FLOW.format(id=flow_id, message="one"))
    assert created["revision"] == 1  # as in Kestra: the server numbers revisions

