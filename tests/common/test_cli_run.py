"""`harrier run` and `harrier validate` as a person uses them: the real
command in a subprocess, embedded mode (no broker configured)."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def harrier(*args: str, cwd: Path = ROOT,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("HARRIER_")}
    clean["PYTHONPATH"] = str(ROOT)
    return subprocess.run([sys.executable, "-m", "harrier", *args], cwd=cwd,
                          env={**clean, **(env or {})}, capture_output=True, text=True,
                          timeout=240)


def test_run_prints_live_logs_prefixed_by_task_and_a_summary():
    result = harrier("run", "flows/hello.yaml", "--input", "name=Ada")
    assert result.returncode == 0, result.stderr
    assert "[greet]" in result.stdout and "Hello, Ada!" in result.stdout
    assert "left branch sees 3 letters" in result.stdout
    assert "SUCCESS" in result.stdout and "attempts" in result.stdout


def test_run_json_prints_the_final_execution(tmp_path):
    result = harrier("run", "flows/hello.yaml", "--json")
    assert result.returncode == 0, result.stderr
    execution = json.loads(result.stdout)
    assert execution["state"]["current"] == "SUCCESS"
    assert {t["taskId"] for t in execution["taskRunList"]} >= {"greet", "measure", "left"}


def test_failed_flow_exits_1(tmp_path):
    flow = tmp_path / "fail.yaml"
    flow.write_text("id: f\nnamespace: t\ntasks:\n"
                    "  - {id: boom, type: io.kestra.plugin.scripts.shell.Commands, "
                    "commands: ['echo broken >&2; exit 3']}\n")
    result = harrier("run", str(flow))
    assert result.returncode == 1
    assert "FAILED" in result.stdout and "broken" in result.stdout


def test_bad_input_is_rejected_before_anything_runs(tmp_path):
    marker = tmp_path / "ran"
    flow = tmp_path / "typed.yaml"
    flow.write_text(f"id: f\nnamespace: t\ninputs:\n  - {{id: day, type: DATE}}\n"
                    f"tasks:\n  - {{id: t, type: io.kestra.plugin.scripts.shell.Commands, "
                    f"commands: ['touch {marker}']}}\n")
    result = harrier("run", str(flow), "--input", "day=2024-13-45", "--input", "extra=1")
    assert result.returncode == 1
    assert "input 'day': expected DATE" in result.stderr
    assert "unknown input 'extra'" in result.stderr
    assert not marker.exists()


def test_validate_names_file_line_and_field(tmp_path):
    (tmp_path / "good.yaml").write_text((ROOT / "flows" / "hello.yaml").read_text())
    (tmp_path / "bad.yaml").write_text("id: b\nnamespace: t\ntasks:\n"
                                       "  - id: x\n    type: io.kestra.plugin.core.log.Log\n"
                                       "    mesage: hi\n")
    result = harrier("validate", str(tmp_path))
    assert result.returncode == 1
    assert "ok" in result.stdout and "good.yaml" in result.stdout
    assert f"{tmp_path / 'bad.yaml'}:6:5: tasks[0].mesage: unknown property 'mesage'" \
        in result.stdout
    as_json = json.loads(harrier("validate", "--json", str(tmp_path)).stdout)
    assert [r["valid"] for r in as_json] == [False, True]


def test_run_json_and_logs_mask_secret_inputs(tmp_path):
    flow = tmp_path / "secret.yaml"
    flow.write_text("id: s\nnamespace: t\ninputs:\n  - {id: token, type: SECRET}\ntasks:\n"
                    "  - {id: say, type: io.kestra.plugin.core.log.Log, "
                    "message: 'token {{ inputs.token }}'}\n")
    result = harrier("run", str(flow), "--input", "token=tok-98765", "--json")
    assert result.returncode == 0, result.stderr
    assert "tok-98765" not in result.stdout + result.stderr
    assert json.loads(result.stdout)["inputs"] == {"token": "******"}


def test_validate_refuses_an_alias_bomb_file_at_once(tmp_path):
    levels = "abcdefghi"
    lines = ["a: &a [l,l,l,l,l,l,l,l,l]"] + [
        f"{n}: &{n} [{','.join([f'*{p}'] * 9)}]" for p, n in itertools.pairwise(levels)]
    (tmp_path / "bomb.yaml").write_text("id: bomb\nnamespace: t\n" + "\n".join(lines)
                                        + "\ntasks: *i\n")
    # A generous timeout: expanding the nine levels would take minutes and gigabytes.
    result = subprocess.run([sys.executable, "-m", "harrier", "validate", str(tmp_path)],
                            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert f"{tmp_path / 'bomb.yaml'}:" in result.stdout + result.stderr
    assert "aliases" in result.stdout + result.stderr


@pytest.mark.slow
def test_readme_spark_pipeline_runs_with_a_local_file_as_its_file_input(tmp_path):
    """The README's "Files between tasks" example, as written: `--input raw=<path>`
    stores the file; extract's outputFiles reach PySpark and read()."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Files between tasks", 1)[1]
    flow_text = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    flow = tmp_path / "daily-sales.yaml"
    flow.write_text(flow_text)
    raw = tmp_path / "sales.csv"
    raw.write_text("#region,amount\nnorth,3\nsouth,4\n")
    result = harrier("run", str(flow), "--input", f"raw={raw}",
                     env={"HARRIER_WORK_DIR": str(tmp_path / "work")})
    assert result.returncode == 0, result.stdout + result.stderr
    storage = tmp_path / "work" / "storage" / "company" / "sales" / "daily-sales"
    [uploaded] = storage.glob("executions/*/inputs/raw/sales.csv")
    assert uploaded.read_bytes() == raw.read_bytes()
    [clean] = storage.glob("executions/*/tasks/extract/*/clean.csv")
    assert clean.read_text() == "north,3\nsouth,4\n"
    lines = result.stdout.splitlines()
    assert any("[aggregate]" in line and line.rstrip().endswith(" 7") for line in lines), lines
    assert any("[publish]" in line and "16 bytes aggregated" in line for line in lines), lines


def test_run_shows_what_each_loop_iteration_said_in_time_order(tmp_path):
    # Kestra 2.0's Loop runs each iteration as an execution of its own; embedded
    # runs keep nothing, so `harrier run` is where its logs are seen.
    flow = tmp_path / "loop.yaml"
    flow.write_text("""id: partitions
namespace: team.spark
tasks:
  - id: days
    type: io.kestra.plugin.core.flow.Loop
    values: ["2026-11-30", "2026-12-01"]
    concurrencyLimit: 1
    tasks:
      - id: aggregate
        type: io.kestra.plugin.scripts.shell.Commands
        commands:
          - echo aggregating {{ item.value }}
          - test {{ item.index }} = 0 || { echo corrupt partition >&2; exit 4; }
  - {id: done, type: io.kestra.plugin.core.log.Log, message: finished}
""")
    result = harrier("run", str(flow))
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    first = next(i for i, line in enumerate(lines) if "aggregating 2026-11-30" in line)
    second = next(i for i, line in enumerate(lines) if "aggregating 2026-12-01" in line)
    assert lines[first].startswith("[days#0 aggregate]")
    assert lines[second].startswith("[days#1 aggregate]") and second > first
    assert any(line.startswith("[days#1 aggregate]") and "corrupt partition" in line
               for line in lines)
    failure = next(i for i, line in enumerate(lines) if "Loop iteration 1 ended in FAILED" in line)
    assert failure > second  # the parent's line comes after what the iteration said
    assert "finished" not in result.stdout


def test_run_with_a_flows_dir_runs_subflows_and_shows_what_they_said(tmp_path):
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "child.yaml").write_text("""id: child
namespace: team.spark
inputs:
  - {id: day, type: STRING}
tasks:
  - {id: load, type: io.kestra.plugin.core.log.Log, message: "loading {{ inputs.day }}"}
""")
    parent = tmp_path / "parent.yaml"
    parent.write_text("""id: parent
namespace: team.spark
tasks:
  - id: each
    type: io.kestra.plugin.core.flow.ForEach
    values: [mon, tue]
    tasks:
      - id: ingest
        type: io.kestra.plugin.core.flow.Subflow
        namespace: team.spark
        flowId: child
        inputs: {day: "{{ taskrun.value }}"}
""")
    alone = harrier("run", str(parent))  # the child flow is nowhere to be found
    assert alone.returncode == 1
    assert "Unable to find flow 'team.spark'.'child'" in alone.stdout + alone.stderr
    assert "harrier run --flows-dir DIR" in alone.stdout + alone.stderr
    result = harrier("run", str(parent), "--flows-dir", str(flows))
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert any(line.startswith("[ingest[mon] load]") and "loading mon" in line for line in lines)
    assert any(line.startswith("[ingest[tue] load]") and "loading tue" in line for line in lines)
