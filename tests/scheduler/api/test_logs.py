"""Logs through the API: JSON entries (filtered by level and task run), the
text download, and Server-Sent Events for logs and execution changes."""

from __future__ import annotations

import json

from tests.scheduler.api.conftest import Api, unique

LEVELS = """
id: {id}
namespace: api.logs
tasks:
  - id: quiet
    type: io.kestra.plugin.core.log.Log
    level: DEBUG
    message: debug line
  - id: loud
    type: io.kestra.plugin.core.log.Log
    level: WARN
    message: warn line
  - id: echo
    type: io.kestra.plugin.scripts.shell.Commands
    commands: ["echo out one", "echo out two"]
"""


def sse_events(text: str) -> list[dict]:
    events = []
    for block in text.split("\n\n"):
        fields: dict = {}
        for line in block.splitlines():
            if line.startswith(":"):
                continue
            name, _, value = line.partition(": ")
            fields[name] = value
        if "data" in fields:
            fields["data"] = json.loads(fields["data"])
            events.append(fields)
    return events


def test_logs_are_kestra_entries_filtered_by_level_and_task_run(api: Api) -> None:
    flow_id = unique()
    api.push(LEVELS.format(id=flow_id))
    execution = api.run("api.logs", flow_id)
    entries = api.client.get(f"/api/v1/logs/{execution['id']}").json()
    assert [e["message"] for e in entries] == ["debug line", "warn line", "out one", "out two"]
    first = entries[0]
    assert first["executionId"] == execution["id"] and first["taskId"] == "quiet"
    assert first["level"] == "DEBUG" and first["timestamp"].endswith("Z")
    warn = api.client.get(f"/api/v1/logs/{execution['id']}", params={"minLevel": "WARN"})
    assert [e["message"] for e in warn.json()] == ["warn line"]
    echo_run = next(r["id"] for r in execution["taskRunList"] if r["taskId"] == "echo")
    only_echo = api.client.get(f"/api/v1/logs/{execution['id']}",
                               params={"taskRunId": echo_run}).json()
    assert [e["message"] for e in only_echo] == ["out one", "out two"]
    bad = api.client.get(f"/api/v1/logs/{execution['id']}", params={"minLevel": "LOUD"})
    assert bad.status_code == 400
    assert api.client.get("/api/v1/logs/unknown-execution").status_code == 404


def test_download_is_text_lines_with_time_level_and_task(api: Api) -> None:
    flow_id = unique()
    api.push(LEVELS.format(id=flow_id))
    execution = api.run("api.logs", flow_id)
    response = api.client.get(f"/api/v1/logs/{execution['id']}/download")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    lines = response.text.splitlines()
    assert len(lines) == 4
    stamp, level, task, message = lines[1].split(" ", 3)
    assert stamp.endswith("Z") and level == "WARN" and task == "[loud]"
    assert message == "warn line"


def test_follow_streams_every_entry_then_an_end_event(api: Api) -> None:
    flow_id = unique()
    api.push(LEVELS.format(id=flow_id))
    created = api.client.post(f"/api/v1/executions/api.logs/{flow_id}").json()
    response = api.client.get(f"/api/v1/logs/{created['id']}/follow")
    assert response.headers["content-type"].startswith("text/event-stream")
    events = sse_events(response.text)
    assert [e["data"]["message"] for e in events[:-1]] == [
        "debug line", "warn line", "out one", "out two"]
    assert events[-1]["event"] == "end" and events[-1]["data"]["state"] == "SUCCESS"
    # A reconnecting client resumes after the last id it saw.
    resumed = api.client.get(f"/api/v1/logs/{created['id']}/follow",
                             headers={"Last-Event-ID": events[1]["id"]})
    assert [e["data"].get("message") for e in sse_events(resumed.text)] == [
        "out one", "out two", None]
    assert api.client.get("/api/v1/logs/unknown/follow").status_code == 404


def test_execution_follow_streams_changes_until_terminal(api: Api) -> None:
    flow_id = unique()
    api.push(LEVELS.format(id=flow_id))
    created = api.client.post(f"/api/v1/executions/api.logs/{flow_id}").json()
    events = sse_events(api.client.get(f"/api/v1/executions/{created['id']}/follow").text)
    states = [e["data"]["state"]["current"] for e in events if "event" not in e]
    assert states[-1] == "SUCCESS"
    assert events[-1]["event"] == "end"
    assert api.client.get("/api/v1/executions/unknown/follow").status_code == 404
