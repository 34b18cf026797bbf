"""Flows whose tasks run in containers on a real (private) Docker engine."""

from __future__ import annotations

import pytest

from common.state import State
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
