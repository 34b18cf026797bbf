"""Flows whose tasks run in containers on a real (private) Docker engine."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from harrier.common.state import State
from tests.integration.embedded import logs, run_flow_text, task_run

pytestmark = pytest.mark.slow


def test_a_flow_task_runs_in_a_container_and_passes_outputs(embedded, docker_engine):
    execution = run_flow_text(embedded, f"""
id: docker-flow
namespace: test
inputs:
  - id: who
    type: STRING
tasks:
  - id: boxed
    type: io.kestra.plugin.scripts.shell.Commands
    containerImage: {docker_engine.image}
    taskRunner:
      type: io.kestra.plugin.scripts.runner.docker.Docker
      host: {docker_engine.host}
      pullPolicy: NEVER
    commands:
      - echo "hello {{{{ inputs.who }}}} from $(cat /etc/hostname | head -c 0)a container"
      - echo '::{{"outputs":{{"answer":42}}}}::'
  - id: after
    type: io.kestra.plugin.core.debug.Return
    format: "{{{{ outputs.boxed.vars.answer }}}}"
""", {"who": "Ada; rm -rf /"})
    assert execution.state.current == State.SUCCESS, task_run(execution, "boxed").error
    assert logs(embedded, execution, "boxed") == ["hello Ada; rm -rf / from a container"]
    assert task_run(execution, "after").outputs["value"] == "42"


def test_files_pass_between_a_process_task_and_a_container_task(embedded, docker_engine):
    """A stored file reaches a container (a local copy in the mounted working
    directory) and the container's outputFiles go back into storage."""
    execution = run_flow_text(embedded, f"""
id: docker-files
namespace: test
tasks:
  - id: write
    type: io.kestra.plugin.scripts.shell.Commands
    outputFiles: ["rows.csv"]
    commands: ["printf 'a\\nb\\nc\\n' > rows.csv"]
  - id: boxed
    type: io.kestra.plugin.scripts.shell.Commands
    containerImage: {docker_engine.image}
    taskRunner:
      type: io.kestra.plugin.scripts.runner.docker.Docker
      host: {docker_engine.host}
      pullPolicy: NEVER
    outputFiles: ["count.txt"]
    commands:
      - wc -l < {{{{ outputs.write.outputFiles['rows.csv'] }}}} > count.txt
  - id: after
    type: io.kestra.plugin.core.debug.Return
    format: "{{{{ read(outputs.boxed.outputFiles['count.txt']) | trim }}}}"
""")
    assert execution.state.current == State.SUCCESS, task_run(execution, "boxed").error
    assert task_run(execution, "after").outputs["value"] == "3"


def test_a_missing_image_fails_the_task_with_its_name(embedded, docker_engine):
    execution = run_flow_text(embedded, f"""
id: docker-missing
namespace: test
tasks:
  - id: boxed
    type: io.kestra.plugin.scripts.shell.Commands
    containerImage: harrier-no-such-image:1
    taskRunner:
      type: io.kestra.plugin.scripts.runner.docker.Docker
      host: {docker_engine.host}
      pullPolicy: NEVER
    commands: ["true"]
""")
    assert execution.state.current == State.FAILED
    assert "harrier-no-such-image:1" in task_run(execution, "boxed").error


def _harrier_run(flow: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items()
            if not k.startswith("HARRIER_") and k != "DOCKER_HOST"}
    return subprocess.run([sys.executable, "-m", "harrier", "run", str(flow)],
                          env={**base, **env}, capture_output=True, text=True, timeout=120)


def test_docker_host_is_honoured_and_harrier_docker_host_overrides_it(docker_engine, tmp_path):
    flow = tmp_path / "boxed.yaml"
    flow.write_text(f"""
id: docker-host
namespace: test
tasks:
  - id: boxed
    type: io.kestra.plugin.scripts.shell.Commands
    containerImage: {docker_engine.image}
    taskRunner:
      type: io.kestra.plugin.scripts.runner.docker.Docker
      pullPolicy: NEVER
    commands: ["echo inside a container"]
""")
    # The engine named by DOCKER_HOST, as the docker CLI would use it.
    found = _harrier_run(flow, {"DOCKER_HOST": docker_engine.host})
    assert found.returncode == 0, found.stdout + found.stderr
    assert "inside a container" in found.stdout

    nowhere = tmp_path / "nobody-listens.sock"
    overridden = _harrier_run(flow, {"DOCKER_HOST": docker_engine.host,
                                     "HARRIER_DOCKER_HOST": f"unix://{nowhere}"})
    assert overridden.returncode == 1
    assert str(nowhere) in overridden.stdout
