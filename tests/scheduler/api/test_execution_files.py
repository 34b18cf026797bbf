"""Files between tasks through internal storage, over the API of an embedded
Harrier with credentials: a FILE input uploaded as multipart and read by tasks,
outputFiles passed on and read() in a template, the download endpoint (auth,
another execution's file, traversal), and files removed with the execution."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from harrier.common.flow import parse_flow
from harrier.common.state import State
from harrier.common.storage import storage_for
from harrier.scheduler.api import create_api
from harrier.scheduler.executions import create_execution, start_execution
from harrier.scheduler.storage_sweep import sweep_storage
from harrier.worker.runtime import Runtime
from tests.scheduler.api.conftest import unique

TOKEN = {"Authorization": "Bearer files-token"}

PIPELINE = """
id: {id}
namespace: data.files
inputs:
  - id: raw
    type: FILE
tasks:
  - id: clean
    type: io.kestra.plugin.scripts.shell.Commands
    inputFiles:
      raw.csv: "{{{{ inputs.raw }}}}"
    outputFiles: ["clean.csv"]
    commands:
      - grep -v '^#' raw.csv > clean.csv
  - id: count
    type: io.kestra.plugin.scripts.shell.Commands
    commands:
      - wc -l < {{{{ outputs.clean.outputFiles['clean.csv'] }}}}
  - id: show
    type: io.kestra.plugin.core.debug.Return
    format: "{{{{ read(outputs.clean.outputFiles['clean.csv']) | trim }}}}"
"""


@pytest.fixture(scope="module")
def client(embedded: Runtime) -> Iterator[TestClient]:
    settings = embedded.settings.with_overrides(api_token="files-token")
    with TestClient(create_api(settings, embedded.store, embedded.app)) as made:
        yield made


def run(client: TestClient, flow_text: str, **kwargs: object) -> dict:
    flow = client.post("/api/v1/flows", content=flow_text, headers={
        **TOKEN, "Content-Type": "application/x-yaml"})
    assert flow.status_code == 200, flow.text
    body = flow.json()
    response = client.post(f"/api/v1/executions/{body['namespace']}/{body['id']}",
                           params={"wait": "true"}, headers=TOKEN, **kwargs)  # type: ignore[arg-type]
    assert response.status_code == 200, response.text
    return response.json()


def outputs(execution: dict, task_id: str) -> dict:
    [run] = [r for r in execution["taskRunList"] if r["taskId"] == task_id]
    return run["outputs"]


def messages(client: TestClient, execution: dict, task_id: str) -> list[str]:
    logs = client.get(f"/api/v1/logs/{execution['id']}", headers=TOKEN).json()
    return [e["message"] for e in logs if e["taskId"] == task_id]


@pytest.fixture(scope="module")
def pipeline(client: TestClient) -> dict:
    """One run of PIPELINE with an uploaded file."""
    execution = run(client, PIPELINE.format(id=unique()),
                    files={"raw": ("raw.csv", b"#header\na,1\nb,2\n", "text/csv")})
    assert execution["state"]["current"] == "SUCCESS", execution
    return execution


def test_an_uploaded_file_input_is_stored_and_read_by_the_next_tasks(
        client: TestClient, pipeline: dict) -> None:
    prefix = f"kestra:///data/files/{pipeline['flowId']}/executions/{pipeline['id']}/"
    assert pipeline["inputs"]["raw"] == prefix + "inputs/raw/raw.csv"
    clean = outputs(pipeline, "clean")["outputFiles"]["clean.csv"]
    assert clean.startswith(prefix + "tasks/clean/") and clean.endswith("/clean.csv")
    # A URI in a command is a local copy of the file (Kestra's auto-resolution).
    assert messages(client, pipeline, "count") == ["2"]
    # read() in a template returns the file's text.
    assert outputs(pipeline, "show")["value"] == "a,1\nb,2"


def test_the_download_endpoint_serves_a_file_of_the_execution(
        client: TestClient, pipeline: dict) -> None:
    clean = outputs(pipeline, "clean")["outputFiles"]["clean.csv"]
    url = f"/api/v1/executions/{pipeline['id']}/file"
    assert client.get(url, params={"path": clean}).status_code == 401
    response = client.get(url, params={"path": clean}, headers=TOKEN)
    assert response.status_code == 200 and response.content == b"a,1\nb,2\n"
    assert "clean.csv" in response.headers["content-disposition"]
    uploaded = client.get(url, params={"path": pipeline["inputs"]["raw"]}, headers=TOKEN)
    assert uploaded.content == b"#header\na,1\nb,2\n"


def test_a_file_of_another_execution_or_a_traversal_is_refused(
        client: TestClient, pipeline: dict) -> None:
    other = run(client, PIPELINE.format(id=unique()),
                files={"raw": ("raw.csv", b"x,9\n", "text/csv")})
    clean = outputs(pipeline, "clean")["outputFiles"]["clean.csv"]
    wrong = client.get(f"/api/v1/executions/{other['id']}/file", params={"path": clean},
                       headers=TOKEN)
    assert wrong.status_code == 404
    prefix = f"kestra:///data/files/{pipeline['flowId']}/executions/{pipeline['id']}/"
    url = f"/api/v1/executions/{pipeline['id']}/file"
    for sneaky in (prefix + "../" + other["id"] + "/inputs/raw/raw.csv",
                   prefix + "%2e%2e/" + other["id"] + "/inputs/raw/raw.csv",
                   prefix + "inputs/raw/..%2F..%2F..%2F" + other["id"] + "/inputs/raw/raw.csv"):
        response = client.get(url, params={"path": sneaky}, headers=TOKEN)
        assert response.status_code == 422, (sneaky, response.text)
        assert "'..'" in response.json()["message"]
    missing = client.get(url, params={"path": prefix + "tasks/none/x/y.csv"}, headers=TOKEN)
    assert missing.status_code == 404
    unknown = client.get("/api/v1/executions/nope/file", params={"path": clean}, headers=TOKEN)
    assert unknown.status_code == 404


def test_read_of_a_file_of_another_namespace_fails_the_task(
        client: TestClient, pipeline: dict) -> None:
    clean = outputs(pipeline, "clean")["outputFiles"]["clean.csv"]
    execution = run(client, f"""
id: {unique()}
namespace: elsewhere
tasks:
  - id: peek
    type: io.kestra.plugin.core.debug.Return
    allowFailure: true
    format: "{{{{ read('{clean}') }}}}"
  - id: copy
    type: io.kestra.plugin.scripts.shell.Commands
    inputFiles:
      stolen.csv: "{clean}"
    commands: ["cat stolen.csv"]
""")
    assert execution["state"]["current"] == "FAILED"
    errors = {r["taskId"]: r["error"] for r in execution["taskRunList"]}
    assert "not a file of this execution nor of namespace elsewhere" in errors["peek"]
    assert "inputFiles.stolen.csv" in errors["copy"] and "namespace elsewhere" in errors["copy"]


def test_read_refuses_a_file_larger_than_its_bound(client: TestClient) -> None:
    execution = run(client, f"""
id: {unique()}
namespace: data.files
tasks:
  - id: big
    type: io.kestra.plugin.scripts.shell.Commands
    outputFiles: ["big.bin"]
    commands: ["head -c 1048577 /dev/zero > big.bin"]
  - id: show
    type: io.kestra.plugin.core.debug.Return
    format: "{{{{ read(outputs.big.outputFiles['big.bin']) | length }}}}"
""")
    assert execution["state"]["current"] == "FAILED"
    show = next(r for r in execution["taskRunList"] if r["taskId"] == "show")
    assert "more than read() returns" in show["error"]


def test_deleting_an_execution_removes_its_files(client: TestClient, embedded: Runtime) -> None:
    execution = run(client, PIPELINE.format(id=unique()),
                    files={"raw": ("raw.csv", b"q,1\n", "text/csv")})
    clean = outputs(execution, "clean")["outputFiles"]["clean.csv"]
    storage = storage_for(embedded.settings.storage_root)
    assert storage.size(clean) == 4
    assert client.delete(f"/api/v1/executions/{execution['id']}",
                         headers=TOKEN).status_code == 204
    folder = embedded.settings.storage_root / "data/files" / execution["flowId"] / \
        "executions" / execution["id"]
    assert not folder.exists()


def test_the_sweep_removes_files_of_executions_that_expired(
        client: TestClient, embedded: Runtime) -> None:
    kept = run(client, PIPELINE.format(id=unique()),
               files={"raw": ("raw.csv", b"k,1\n", "text/csv")})
    expired = run(client, PIPELINE.format(id=unique()),
                  files={"raw": ("raw.csv", b"e,1\n", "text/csv")})
    embedded.store.delete_execution(expired["id"])  # as the retention TTL does in Redis
    root = embedded.settings.storage_root / "data/files"
    gone = root / expired["flowId"] / "executions" / expired["id"]
    old = time.time() - 7200
    os.utime(gone, (old, old))
    assert sweep_storage(embedded.settings, embedded.store, grace=3600) >= 1
    assert not gone.exists()
    assert (root / kept["flowId"] / "executions" / kept["id"]).is_dir()


def test_a_kestra_uri_in_a_path_query_must_be_percent_encoded_once(
        client: TestClient, pipeline: dict) -> None:
    # Kestra's UI sends ?path=<the URI, url-encoded>; httpx encodes it here too.
    clean = outputs(pipeline, "clean")["outputFiles"]["clean.csv"]
    raw = client.get(f"/api/v1/executions/{pipeline['id']}/file?path={quote(clean, safe='')}",
                     headers=TOKEN)
    assert raw.status_code == 200 and raw.content == b"a,1\nb,2\n"


def test_a_flow_triggered_execution_reads_the_files_of_the_one_that_triggered_it(
        embedded: Runtime, pipeline: dict) -> None:
    """Kestra lets the downstream flow of a Flow trigger read its upstream's files
    (the `trigger` variables name the upstream execution), in any namespace."""
    clean = outputs(pipeline, "clean")["outputFiles"]["clean.csv"]
    flow = parse_flow(f"""
id: publish
namespace: reporting
tasks:
  - id: show
    type: io.kestra.plugin.core.debug.Return
    format: "{{{{ read('{clean}') | trim }}}}"
""", "publish.yaml")
    upstream = {"type": "io.kestra.plugin.core.trigger.Flow", "namespace": "data.files",
                "flowId": pipeline["flowId"]}
    results = {}
    for name, execution_id in (("upstream", pipeline["id"]), ("other", "someOtherId")):
        execution = create_execution(embedded.store, flow, {},
                                     trigger={**upstream, "executionId": execution_id})
        start_execution(embedded.app, flow, execution, store=embedded.store)
        results[name] = embedded.store.wait_terminal(execution.id, 60)
    assert results["upstream"].state.current == State.SUCCESS
    assert results["upstream"].task_runs[0].outputs["value"] == "a,1\nb,2"
    assert results["other"].state.current == State.FAILED


APPROVAL_WITH_FILE = """
id: {id}
namespace: data.files
tasks:
  - id: approve
    type: io.kestra.plugin.core.flow.Pause
    onResume:
      - id: evidence
        type: FILE
      - id: reviewer
        type: STRING
  - id: show
    type: io.kestra.plugin.core.debug.Return
    format: >-
      {{{{ outputs.approve.onResume.reviewer }}}}:
      {{{{ read(outputs.approve.onResume.evidence) | trim }}}}
"""


def test_a_file_on_resume_is_stored_under_the_execution_and_read_by_later_tasks(
        client: TestClient, embedded: Runtime) -> None:
    flow_id = unique("resume")
    assert client.post("/api/v1/flows", content=APPROVAL_WITH_FILE.format(id=flow_id), headers={
        **TOKEN, "Content-Type": "application/x-yaml"}).status_code == 200
    created = client.post(f"/api/v1/executions/data.files/{flow_id}", headers=TOKEN).json()
    deadline = time.monotonic() + 30
    while embedded.store.execution_state(created["id"]) != State.PAUSED:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    storage = storage_for(embedded.settings.storage_root)
    # Refused (the STRING is missing): nothing changes and the upload is not kept.
    refused = client.post(f"/api/v1/executions/{created['id']}/resume", headers=TOKEN,
                          files={"evidence": ("report.txt", b"all checks green\n")})
    assert refused.status_code == 422 and "reviewer" in refused.text
    assert embedded.store.execution_state(created["id"]) == State.PAUSED
    folder = embedded.settings.storage_root / "data" / "files" / flow_id / "executions" / \
        created["id"]
    assert not (folder / "resume").exists() or not any((folder / "resume").iterdir())

    answer = client.post(f"/api/v1/executions/{created['id']}/resume", headers=TOKEN,
                         files={"evidence": ("report.txt", b"all checks green\n"),
                                "reviewer": (None, "ada")})
    assert answer.status_code == 200, answer.text
    done = embedded.store.wait_terminal(created["id"], 30)
    assert done.state.current == State.SUCCESS, done.error
    uri = next(r for r in done.task_runs if r.task_id == "approve").outputs["onResume"]["evidence"]
    assert uri.startswith(f"kestra:///data/files/{flow_id}/executions/{created['id']}/resume/")
    assert uri.endswith("/evidence/report.txt")
    assert len(list((folder / "resume").iterdir())) == 1  # the refused upload left nothing
    with storage.open(uri) as stream:
        assert stream.read() == b"all checks green\n"
    assert next(r for r in done.task_runs if r.task_id == "show").outputs["value"] == \
        "ada: all checks green"
    # The execution's download endpoint serves it, as any file of the execution.
    download = client.get(f"/api/v1/executions/{created['id']}/file", headers=TOKEN,
                          params={"path": uri})
    assert download.status_code == 200 and download.content == b"all checks green\n"
