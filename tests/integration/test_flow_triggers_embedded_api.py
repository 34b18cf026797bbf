"""Embedded `harrier api` (no broker) fires the Flow triggers of flows created
through it: a real process, flows and executions over HTTP."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.fixtures.api_server import ROOT, ApiServer, harrier_env, stop, wait_healthy
from tests.fixtures.redis_server import free_port

UPSTREAM = """id: ingest
namespace: pipeline
tasks:
  - {id: read, type: io.kestra.plugin.core.log.Log, message: reading}
outputs:
  - {id: day, type: STRING, value: "2026-03-01"}
"""

DOWNSTREAM = """id: aggregate
namespace: pipeline
inputs:
  - {id: day, type: STRING}
tasks:
  - {id: sum, type: io.kestra.plugin.core.log.Log, message: "{{ inputs.day }}"}
triggers:
  - id: after_ingest
    type: io.kestra.plugin.core.trigger.Flow
    inputs:
      day: "{{ trigger.outputs.day }}"
    conditions:
      - {type: io.kestra.plugin.core.condition.ExecutionFlow, namespace: pipeline,
         flowId: ingest}
"""


def _aggregates(client: httpx.Client) -> list[dict]:
    found = client.get("/api/v1/executions/search",
                       params={"namespace": "pipeline", "flowId": "aggregate"}).json()
    return list(found["results"])


def test_embedded_api_fires_flow_triggers_of_flows_created_through_it(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in harrier_env("", tmp_path).items()
           if k not in ("HARRIER_BROKER_URL", "HARRIER_STORE_URL", "HARRIER_RESULT_BACKEND")}
    env.update(HARRIER_API_HOST="127.0.0.1", HARRIER_API_PORT=str(port))
    log_path = tmp_path / "api.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "harrier", "api"], cwd=ROOT, env=env,
                                   stdout=log, stderr=subprocess.STDOUT)
    server = ApiServer(f"http://127.0.0.1:{port}", process, log_path)
    try:
        wait_healthy(server)
        with httpx.Client(base_url=server.url, timeout=10) as client:
            for source in (UPSTREAM, DOWNSTREAM):
                created = client.post("/api/v1/flows", content=source,
                                      headers={"Content-Type": "application/x-yaml"})
                assert created.status_code == 200, created.text
            upstream = client.post("/api/v1/executions/pipeline/ingest").json()["id"]
            deadline = time.monotonic() + 10
            while not (found := _aggregates(client)) or \
                    found[0]["state"]["current"] != "SUCCESS":
                assert time.monotonic() < deadline, f"nothing triggered:\n{server.log()}"
                time.sleep(0.05)
            [aggregate] = found
            assert aggregate["inputs"] == {"day": "2026-03-01"}
            assert aggregate["trigger"]["executionId"] == upstream
            # Disabled at run time (as from the UI): the next end passes it by.
            disabled = client.post("/api/v1/triggers/set-disabled/by-triggers", json={
                "triggers": [{"namespace": "pipeline", "flowId": "aggregate",
                              "triggerId": "after_ingest"}], "disabled": True})
            assert disabled.status_code == 200, disabled.text
            again = client.post("/api/v1/executions/pipeline/ingest").json()["id"]
            while client.get(f"/api/v1/executions/{again}").json()["state"]["current"] \
                    != "SUCCESS":
                assert time.monotonic() < deadline
                time.sleep(0.05)
            time.sleep(0.3)
            assert len(_aggregates(client)) == 1
    finally:
        stop(process)
