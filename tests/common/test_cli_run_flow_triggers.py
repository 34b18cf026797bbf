"""`harrier run FLOW --flows-dir DIR` in embedded mode: the Flow triggers of the
flows in DIR fire as executions end, and the run follows the whole chain. The
real command in a subprocess, as a person runs it."""

from __future__ import annotations

import json
from pathlib import Path

from tests.common.test_cli_run import harrier

INGEST = """id: ingest
namespace: spark.pipeline
inputs:
  - {id: records, type: INT}
tasks:
  - id: read
    type: io.kestra.plugin.scripts.shell.Commands
    commands: ["echo read {{ inputs.records }} records"]
outputs:
  - {id: day, type: STRING, value: "2024-05-01"}
  - {id: records, type: INT, value: "{{ inputs.records }}"}
"""

# Fails when ingest read nothing: publish must not run then.
AGGREGATE = """id: aggregate
namespace: spark.pipeline
inputs:
  - {id: day, type: STRING}
  - {id: records, type: INT}
tasks:
  - id: aggregate
    type: io.kestra.plugin.scripts.shell.Commands
    commands: ["echo aggregating {{ inputs.records }} records of {{ inputs.day }}",
               "test {{ inputs.records }} -gt 0"]
outputs:
  - {id: rows, type: STRING, value: "{{ inputs.records }} rows of {{ inputs.day }}"}
triggers:
  - id: after_ingest
    type: io.kestra.plugin.core.trigger.Flow
    inputs:
      day: "{{ trigger.outputs.day }}"
      records: "{{ trigger.outputs.records }}"
    conditions:
      - type: io.kestra.plugin.core.condition.ExecutionFlow
        namespace: spark.pipeline
        flowId: ingest
      - type: io.kestra.plugin.core.condition.ExecutionStatus
        in: [SUCCESS]
"""

PUBLISH = """id: publish
namespace: spark.pipeline
tasks:
  - id: publish
    type: io.kestra.plugin.core.log.Log
    message: "publishing {{ trigger.outputs.rows }} of {{ trigger.flowId }} {{ trigger.state }}"
triggers:
  - id: after_aggregate
    type: io.kestra.plugin.core.trigger.Flow
    conditions:
      - type: io.kestra.plugin.core.condition.ExecutionFlow
        namespace: spark.pipeline
        flowId: aggregate
      - type: io.kestra.plugin.core.condition.ExecutionStatus
        in: [SUCCESS]
"""


def _pipeline(tmp_path: Path, **extra: str) -> Path:
    flows = tmp_path / "flows"
    flows.mkdir()
    for name, text in {"ingest": INGEST, "aggregate": AGGREGATE, "publish": PUBLISH,
                       **extra}.items():
        (flows / f"{name}.yaml").write_text(text)
    return flows


def test_the_chain_runs_to_the_end_and_publish_sees_the_outputs_of_aggregate(tmp_path):
    flows = _pipeline(tmp_path)
    result = harrier("run", str(flows / "ingest.yaml"), "--flows-dir", str(flows),
                     "--input", "records=7")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert any("[aggregate]" in line and "aggregating 7 records of 2024-05-01" in line
               for line in lines), lines
    assert any("[publish]" in line and "publishing 7 rows of 2024-05-01 of aggregate SUCCESS"
               in line for line in lines), lines
    # Each triggered execution is announced before its logs, and listed at the end.
    assert any(line.startswith("--- spark.pipeline.aggregate execution ") for line in lines)
    table = result.stdout.split("Triggered executions:", 1)[1]
    assert "spark.pipeline.aggregate" in table and "spark.pipeline.publish" in table
    assert "after_ingest after spark.pipeline.ingest SUCCESS" in table


def test_a_failed_aggregate_does_not_publish_and_the_exit_code_is_ingests(tmp_path):
    flows = _pipeline(tmp_path)
    result = harrier("run", str(flows / "ingest.yaml"), "--flows-dir", str(flows),
                     "--input", "records=0")
    # ingest succeeded: its exit code; aggregate's failure is shown, and its logs.
    assert result.returncode == 0, result.stdout + result.stderr
    assert "aggregating 0 records of 2024-05-01" in result.stdout
    head, table = result.stdout.split("Triggered executions:", 1)
    assert "of spark.pipeline.ingest: SUCCESS" in head
    [row] = [line for line in table.splitlines() if "spark.pipeline.aggregate" in line]
    assert "FAILED" in row
    assert "publish" not in result.stdout


def test_preconditions_fire_once_both_upstream_flows_succeeded(tmp_path):
    # Kestra 2.0: report waits for ingest and aggregate, in either order; an
    # ingest of the wrong namespace is not one of them.
    report = """id: report
namespace: spark.pipeline
tasks:
  - id: report
    type: io.kestra.plugin.core.log.Log
    message: "report after {{ trigger.flowId }} {{ trigger.executionId }}"
triggers:
  - id: both_done
    type: io.kestra.plugin.core.trigger.Flow
    preconditions:
      id: ingest_and_aggregate
      flows:
        - {namespace: spark.pipeline, flowId: ingest, states: [SUCCESS]}
        - {namespace: spark.pipeline, flowId: aggregate, states: [SUCCESS]}
"""
    flows = _pipeline(tmp_path, report=report)
    result = harrier("run", str(flows / "ingest.yaml"), "--flows-dir", str(flows),
                     "--input", "records=3", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    triggered = json.loads(result.stdout)["triggeredExecutions"]
    by_flow = {e["flowId"]: e for e in triggered}
    assert sorted(e["flowId"] for e in triggered) == ["aggregate", "publish", "report"]
    assert all(e["state"] == "SUCCESS" for e in triggered)
    # Met by ingest's end, then completed by aggregate's: fired by the latter.
    assert by_flow["report"]["upstreamExecutionId"] == by_flow["aggregate"]["id"]
    # aggregate failing leaves the preconditions unmet: no report.
    failed = harrier("run", str(flows / "ingest.yaml"), "--flows-dir", str(flows),
                     "--input", "records=0", "--json")
    execution = json.loads(failed.stdout)
    assert failed.returncode == 0 and execution["state"]["current"] == "SUCCESS"
    [aggregate] = execution["triggeredExecutions"]
    assert (aggregate["flowId"], aggregate["state"], aggregate["triggerId"]) == \
        ("aggregate", "FAILED", "after_ingest")
    assert aggregate["upstreamExecutionId"] == execution["id"]


def test_a_flow_triggering_itself_stops_at_the_bound_with_a_clear_message(tmp_path):
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "again.yaml").write_text("""id: again
namespace: t
tasks:
  - id: hi
    type: io.kestra.plugin.core.log.Log
    message: "after {{ trigger.executionId ?? 'the CLI' }}"
triggers:
  - id: self
    type: io.kestra.plugin.core.trigger.Flow
    conditions:
      - {type: io.kestra.plugin.core.condition.ExecutionFlow, namespace: t, flowId: again}
""")
    result = harrier("run", str(flows / "again.yaml"), "--flows-dir", str(flows),
                     "--max-triggered", "3", "--json")
    assert result.returncode == 1
    execution = json.loads(result.stdout)
    assert execution["state"]["current"] == "SUCCESS"
    assert [e["state"] for e in execution["triggeredExecutions"]] == ["SUCCESS"] * 3
    assert "stopped after 3 triggered executions: flow t.again (trigger self)" in result.stderr
    assert "--max-triggered" in result.stderr
    # Each was started by the end of the one before.
    ids = [execution["id"], *(e["id"] for e in execution["triggeredExecutions"])]
    assert [e["upstreamExecutionId"] for e in execution["triggeredExecutions"]] == ids[:-1]


def test_flows_dir_is_refused_with_a_broker(tmp_path):
    flows = _pipeline(tmp_path)
    result = harrier("run", str(flows / "ingest.yaml"), "--flows-dir", str(flows),
                     "--input", "records=1", env={"HARRIER_BROKER_URL": "redis://127.0.0.1:9"})
    assert result.returncode == 2
    assert "--flows-dir is for embedded mode" in result.stderr
    assert "harrier scheduler" in result.stderr
