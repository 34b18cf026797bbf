"""Flows that must behave as Kestra runs them (issue 12), each run in embedded
mode and across a real worker process (tests/fixtures/modes.py)."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from harrier.common.state import State
from harrier.scheduler.api import create_api
from tests.integration.embedded import states, stored_bytes, task_run

OK = "type: io.kestra.plugin.core.log.Log, message: ok"


@pytest.fixture
def api(harrier):
    """The HTTP API over the same Harrier (embedded or distributed)."""
    with TestClient(create_api(harrier.settings, harrier.store, harrier.app)) as client:
        yield client


def push(api, text: str) -> None:
    response = api.post("/api/v1/flows", content=text,
                        headers={"Content-Type": "application/x-yaml"})
    assert response.status_code == 200, response.text


# -- Switch (Kestra's Switch resolves no child tasks: FlowableUtils fails it)
def test_switch_without_a_matching_case_or_defaults_fails(harrier):
    execution = harrier.run(f"""
id: switch-no-match
namespace: test
tasks:
  - id: choose
    type: io.kestra.plugin.core.flow.Switch
    value: "c"
    defaults: null
    cases:
      a:
        - {{id: in-a, {OK}}}
  - {{id: after, {OK}}}
""")
    assert execution.state.current == State.FAILED
    assert states(execution) == {"choose": State.FAILED}
    assert "'c'" in (task_run(execution, "choose").error or "")


def test_switch_without_a_match_runs_its_defaults(harrier):
    execution = harrier.run(f"""
id: switch-defaults
namespace: test
tasks:
  - id: choose
    type: io.kestra.plugin.core.flow.Switch
    value: "c"
    cases:
      a: [{{id: in-a, {OK}}}]
    defaults: [{{id: fallback, {OK}}}]
""")
    assert execution.state.current == State.SUCCESS
    assert task_run(execution, "choose").outputs == {"value": "c", "defaults": True}
    assert "fallback" in states(execution)


# -- Truthiness: Kestra's TruthUtils (false, 0, -0 and "" are falsy; nothing else)
TRUTH = [("false", False), ("0", False), ("-0", False), ("'  '", False), ("''", False),
         ("'no'", True), ("'none'", True), ("'null'", True), ("'False'", True),
         ("'true'", True), ("'1'", True), ("'0.0'", True)]


@pytest.mark.parametrize("value,truthy", TRUTH, ids=[v for v, _ in TRUTH])
def test_run_if_when_if_and_fail_read_truth_as_kestra(harrier, value, truthy):
    execution = harrier.run(f"""
id: truth
namespace: test
tasks:
  - id: by-run-if
    type: io.kestra.plugin.core.log.Log
    message: ok
    runIf: "{{{{ {value} }}}}"
  - id: by-when
    type: io.kestra.plugin.core.log.Log
    message: ok
    when: "{{{{ {value} }}}}"
  - id: branch
    type: io.kestra.plugin.core.flow.If
    condition: "{{{{ {value} }}}}"
    then: [{{id: then-ran, {OK}}}]
    else: [{{id: else-ran, {OK}}}]
  - id: stop
    type: io.kestra.plugin.core.execution.Fail
    condition: "{{{{ {value} }}}}"
""")
    found = states(execution)
    expected_run = State.SUCCESS if truthy else State.SKIPPED
    assert found["by-run-if"] == expected_run
    assert found["by-when"] == expected_run
    assert ("then-ran" if truthy else "else-ran") in found
    assert ("else-ran" if truthy else "then-ran") not in found
    assert found["stop"] == (State.FAILED if truthy else State.SUCCESS)


# -- Dates: Kestra keeps state dates to the millisecond
MILLIS = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3})?Z$"


def test_start_dates_render_with_milliseconds(harrier):
    execution = harrier.run("""
id: dates
namespace: test
tasks:
  - id: when
    type: io.kestra.plugin.core.debug.Return
    format: "{{ execution.startDate }}|{{ taskrun.startDate }}"
""")
    execution_start, task_start = task_run(execution, "when").outputs["value"].split("|")
    assert re.match(MILLIS, execution_start), execution_start
    assert re.match(MILLIS, task_start), task_start
    # The same instant the API shows for the execution.
    assert execution.to_json()["state"]["startDate"].startswith(execution_start.rstrip("Z"))


# -- Labels: system.correlationId
def test_every_execution_carries_its_correlation_id_label(harrier):
    execution = harrier.run("""
id: correlated
namespace: test
labels: {team: data}
tasks:
  - id: show
    type: io.kestra.plugin.core.debug.Return
    format: "{{ labels.system.correlationId }} {{ labels['system.correlationId'] }}"
""")
    assert execution.labels["system.correlationId"] == execution.id
    assert execution.labels["team"] == "data"
    assert task_run(execution, "show").outputs["value"] == f"{execution.id} {execution.id}"


# -- Smaller: Return.format optional, the deprecated Echo
def test_return_without_format_and_the_deprecated_echo_run(harrier):
    execution = harrier.run("""
id: echo-return
namespace: test
tasks:
  - id: nothing
    type: io.kestra.plugin.core.debug.Return
  - id: echo
    type: io.kestra.plugin.core.debug.Echo
    level: WARN
    format: "{{ task.id }} says hi"
""")
    assert execution.state.current == State.SUCCESS
    assert task_run(execution, "nothing").outputs == {"value": None}
    found = [e for e in harrier.store.read_logs(execution.id) if e.task_id == "echo"]
    assert [(e.level, e.message) for e in found] == [("WARN", "echo says hi")]


# -- Secrets
def test_secret_inputs_are_masked_in_logs_and_in_the_execution_json(harrier):
    execution = harrier.run("""
id: secret-input
namespace: test
inputs:
  - {id: password, type: SECRET}
  - {id: user, type: STRING}
tasks:
  - id: echo
    type: io.kestra.plugin.scripts.shell.Commands
    commands: ["echo 'user {{ inputs.user }} pass {{ inputs.password }}'", "echo $PW"]
    env: {PW: "{{ inputs.password }}"}
  - id: log
    type: io.kestra.plugin.core.log.Log
    message: "pass={{ inputs.password }}"
""", inputs={"password": "hunter2-secret", "user": "alice"})
    assert execution.state.current == State.SUCCESS
    messages = [e.message for e in harrier.store.read_logs(execution.id)]
    assert not [m for m in messages if "hunter2" in m], messages
    assert "user alice pass ******" in messages
    assert "pass=******" in messages
    shown = harrier.store.get_execution(execution.id).to_json()
    assert shown["inputs"] == {"password": "******", "user": "alice"}
    assert "secretInputs" not in shown


def test_secret_names_are_upper_cased_and_wrapped_base64_decodes(harrier):
    execution = harrier.run("""
id: secret-lookup
namespace: test
tasks:
  - id: show
    type: io.kestra.plugin.core.debug.Return
    format: "{{ secret('my_secret') == 's3cr3t-value' }} {{ secret('LONG') | length }}"
""")
    assert execution.state.current == State.SUCCESS
    assert task_run(execution, "show").outputs["value"] == "true 80"


def test_an_undecodable_secret_fails_only_the_flows_using_it(harrier):
    execution = harrier.run("""
id: secret-broken
namespace: test
tasks:
  - id: use
    type: io.kestra.plugin.core.log.Log
    message: "{{ secret('broken') }}"
""")
    assert execution.state.current == State.FAILED
    assert "SECRET_BROKEN cannot be decoded" in task_run(execution, "use").error


# -- Webhook keys written as templates
@pytest.mark.parametrize("key,url_key", [
    ("\"{{ secret('WEBHOOK_KEY') }}\"", "hook-key-from-secret"),
    ("\"{{secret('WEBHOOK_KEY')}}\"", "hook-key-from-secret"),
    ("\"k-{{ flow.id }}\"", "k-hook-flow-id"),
], ids=["secret", "secret-no-spaces", "flow-id"])
def test_webhook_key_templates_are_rendered_when_matching(harrier, api, request, key, url_key):
    flow_id = "hook-" + request.node.callspec.id.split("-", 1)[1]
    push(api, f"""
id: {flow_id}
namespace: test
tasks:
  - {{id: hi, {OK}}}
triggers:
  - id: hook
    type: io.kestra.plugin.core.trigger.Webhook
    key: {key}
""")
    wrong = api.post(f"/api/v1/executions/webhook/test/{flow_id}/"
                     + "%7B%7Bsecret('WEBHOOK_KEY')%7D%7D")
    assert wrong.status_code == 404
    response = api.post(f"/api/v1/executions/webhook/test/{flow_id}/{url_key}")
    assert response.status_code == 200, response.text
    done = harrier.store.wait_terminal(response.json()["id"], 90)
    assert done.state.current == State.SUCCESS


# -- Templates as Pebble evaluates them
def test_pebble_operators_behave_as_in_kestra(harrier):
    execution = harrier.run("""
id: pebble
namespace: test
inputs:
  - {id: nested.string, type: STRING, defaults: deep}
  - {id: doc, type: STRING, defaults: '{"a": 1}'}
tasks:
  - id: skipped
    type: io.kestra.plugin.core.debug.Return
    format: never
    runIf: "false"
  - id: coalesce
    type: io.kestra.plugin.core.debug.Return
    format: >-
      [{{ outputs.not_existing ?? '' }}|{{ outputs.skipped.value ?? 'fallback' }}|{{
      (outputs.not_existing ?? 'in-parens') ~ '!' }}|{% if outputs.not_existing ?? false
      %}yes{% else %}no{% endif %}|{% set v = outputs.gone.value ?? 'set' %}{{ v }}]
  - id: ternary
    type: io.kestra.plugin.core.debug.Return
    format: "{{ true ? 'taken' : undefined_name.value }} {{ false ? outputs.nothing : 'other' }}"
  - id: nested
    type: io.kestra.plugin.core.debug.Return
    format: "{{ inputs.nested.string }}"
  - id: operators
    type: io.kestra.plugin.core.debug.Return
    format: >-
      {{ 'a' equals 'a' }} {{ inputs.nested.string equals 'x' }}
      {{ inputs.doc is json }} {{ 'not json' is json }}
""")
    assert execution.state.current == State.SUCCESS, [r.error for r in execution.task_runs]
    value = {r.task_id: r.outputs.get("value") for r in execution.task_runs}
    assert value["coalesce"] == "[|fallback|in-parens!|no|set]"
    assert value["ternary"] == "taken other"
    assert value["nested"] == "deep"
    assert value["operators"] == "true false true false"


# -- A one-off run does not deploy
ONE_OFF = """
id: one-off
namespace: test
tasks:
  - {{id: say, type: io.kestra.plugin.core.log.Log, message: "{message}"}}
triggers:
  - {{id: every-minute, type: io.kestra.plugin.core.trigger.Schedule, cron: "* * * * *"}}
"""


def test_a_one_off_run_keeps_its_source_without_deploying_it(harrier):
    from harrier.cli.run import run_flow
    from harrier.scheduler.executions import create_execution, start_execution

    deployed = harrier.store.put_flow("test", "one-off", ONE_OFF.format(message="deployed"))
    edited = harrier.flow(ONE_OFF.format(message="edited"))
    if harrier.mode == "distributed":
        done = run_flow(harrier.settings, edited, {}, {}, live=False, timeout=90)
    else:  # run_flow would start a second embedded runtime: the same steps here
        execution = create_execution(harrier.store, edited, {}, deploy=False)
        start_execution(harrier.app, edited, execution, store=harrier.store)
        done = harrier.store.wait_terminal(execution.id, 90)
    assert done.state.current == State.SUCCESS
    assert [e.message for e in harrier.store.read_logs(done.id)] == ["edited"]
    current = harrier.store.get_flow("test", "one-off")
    assert current.revision == deployed.revision and "deployed" in current.source
    assert [r.revision for r in harrier.store.flow_revisions("test", "one-off")] == [
        deployed.revision]
    # The execution's source is kept for its history.
    assert "edited" in harrier.store.get_flow("test", "one-off", done.flow_revision).source
    # A flow never deployed stays unknown to the scheduler.
    other = harrier.flow(ONE_OFF.format(message="x").replace("id: one-off", "id: never"))
    create_execution(harrier.store, other, {}, deploy=False)
    assert "never" not in [r.flow_id for r in harrier.store.list_flows()]


# -- Webhook conditions: false answers 204 and creates nothing
@pytest.mark.parametrize("condition", [
    "conditions:\n      - type: io.kestra.plugin.core.condition.Expression\n"
    "        expression: \"{{ trigger.body.go == 'yes' }}\"",
    "when: \"{{ trigger.body.go == 'yes' }}\"",
], ids=["conditions", "when"])
def test_a_webhook_whose_condition_is_false_answers_204_and_creates_nothing(
        harrier, api, request, condition):
    from harrier.common.store import ExecutionQuery

    flow_id = f"hook-cond-{request.node.callspec.id.split('-', 1)[1]}"
    push(api, f"""
id: {flow_id}
namespace: test
tasks:
  - {{id: hi, {OK}}}
triggers:
  - id: hook
    type: io.kestra.plugin.core.trigger.Webhook
    key: condkey
    {condition}
""")
    url = f"/api/v1/executions/webhook/test/{flow_id}/condkey"
    refused = api.post(url, json={"go": "no"})
    assert refused.status_code == 204 and refused.content == b""
    assert harrier.store.search_executions(ExecutionQuery(flow_id=flow_id))[1] == 0
    accepted = api.post(url, json={"go": "yes"})
    assert accepted.status_code == 200
    assert harrier.store.wait_terminal(accepted.json()["id"], 90).state.current == State.SUCCESS


# -- Script task properties, each with the behaviour a user sees
def test_script_task_properties_do_what_kestra_does(harrier):
    execution = harrier.run("""
id: script-properties
namespace: test
tasks:
  - id: quiet
    type: io.kestra.plugin.core.log.Log
    message: dropped
    level: DEBUG
    logLevel: INFO
  - id: shell
    type: io.kestra.plugin.scripts.shell.Commands
    logLevel: WARN
    beforeCommands: ["export GREETING=hello"]
    env: {WHO: "{{ flow.id }}"}
    inputFiles:
      data/in.txt: "from {{ flow.namespace }}"
    outputFiles: ["out/*.txt"]
    commands:
      - mkdir -p out
      - cat data/in.txt > out/copy.txt
      - echo "::{\\"outputs\\":{\\"said\\":\\"$GREETING $WHO\\"}}::"
      - echo info-line
      - echo warn-line >&2
  - id: not-fast
    type: io.kestra.plugin.scripts.shell.Commands
    failFast: false
    commands: ["false", "echo went-on"]
  - id: python-interpreter
    type: io.kestra.plugin.scripts.shell.Script
    interpreter: ["python3", "-c"]
    script: "print('from', 'python')"
  - id: stderr-warns
    type: io.kestra.plugin.scripts.shell.Commands
    warningOnStdErr: true
    commands: ["echo careful >&2"]
  - id: nap
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT0.2S
""")
    assert execution.state.current == State.WARNING, [r.error for r in execution.task_runs]
    logs = {}
    for entry in harrier.store.read_logs(execution.id):
        logs.setdefault(entry.task_id, []).append((entry.level, entry.message))
    assert "quiet" not in logs  # DEBUG below logLevel INFO
    assert "shell" not in logs  # stdout and stderr log at INFO, below its logLevel WARN
    shell = task_run(execution, "shell")
    assert shell.outputs["vars"] == {"said": "hello script-properties"}
    [copy] = shell.outputs["outputFiles"].values()
    assert stored_bytes(harrier.settings, copy) == b"from test"
    assert ("INFO", "went-on") in logs["not-fast"]
    assert ("INFO", "from python") in logs["python-interpreter"]
    assert task_run(execution, "stderr-warns").state.current == State.WARNING
    assert ("WARN", "careful") in logs["stderr-warns"]
    nap = task_run(execution, "nap")
    assert (nap.state.end_date - nap.state.start_date).total_seconds() >= 0.2


# -- Flow-level properties
def test_flow_variables_labels_and_typed_outputs(harrier):
    execution = harrier.run("""
id: flow-level
namespace: test
description: documented
labels: [{key: team, value: data}]
variables: {rows: 40}
outputs:
  - {id: total, type: INT, value: "{{ vars.rows + 2 }}", description: rows in all}
  - {id: said, value: "{{ outputs.say.value }}"}
tasks:
  - id: say
    type: io.kestra.plugin.core.debug.Return
    format: "{{ vars.rows }} {{ labels.team }}"
""")
    assert execution.state.current == State.SUCCESS
    assert execution.outputs == {"total": 42, "said": "40 data"}
    bad = harrier.run("""
id: flow-bad-output
namespace: test
outputs:
  - {id: total, type: INT, value: "many"}
tasks:
  - {id: say, type: io.kestra.plugin.core.log.Log, message: hi}
""")
    assert bad.state.current == State.FAILED
    assert "output 'total': expected INT" in (bad.error or "")


def test_worker_group_routes_the_task_to_its_queue(harrier):
    from tests.fixtures.modes import GROUP

    execution = harrier.run(f"""
id: grouped
namespace: test
tasks:
  - id: anywhere
    type: io.kestra.plugin.scripts.shell.Commands
    commands: ["true"]
  - id: in-group
    type: io.kestra.plugin.scripts.shell.Commands
    workerGroup: {{key: {GROUP}}}
    commands: ["true"]
""")
    assert execution.state.current == State.SUCCESS
    if harrier.mode == "distributed":  # only the group's worker consumes its queue
        assert task_run(execution, "in-group").attempts[0].worker_id == f"{GROUP}@harrier-test"
        assert task_run(execution, "anywhere").attempts[0].worker_id == "semantics@harrier-test"


def test_warning_on_retry_ends_a_task_that_needed_a_retry_warning(harrier, tmp_path):
    marker = tmp_path / "tried"
    execution = harrier.run(f"""
id: warning-on-retry
namespace: test
tasks:
  - id: flaky
    type: io.kestra.plugin.scripts.shell.Commands
    retry: {{type: constant, interval: PT0.05S, maxAttempts: 2, warningOnRetry: true}}
    commands: ["test -e {marker} || {{ touch {marker}; exit 1; }}"]
""")
    assert execution.state.current == State.WARNING
    assert task_run(execution, "flaky").state.current == State.WARNING


def test_spark_cli_java17_options_reach_spark_submit_unless_turned_off(harrier):
    execution = harrier.run("""
id: java17
namespace: test
tasks:
  - id: "on"
    type: io.kestra.plugin.spark.SparkCLI
    commands: ['echo "opts=$SPARK_SUBMIT_OPTS"']
  - id: "off"
    type: io.kestra.plugin.spark.SparkCLI
    java17Options: false
    commands: ['echo "opts=$SPARK_SUBMIT_OPTS"']
""")
    assert execution.state.current == State.SUCCESS, [r.error for r in execution.task_runs]
    said = {e.task_id: e.message for e in harrier.store.read_logs(execution.id)
            if e.message.startswith("opts=")}
    assert "--add-opens" in said["on"]
    assert said["off"] == "opts="


def test_disabled_tasks_do_not_run(harrier):
    execution = harrier.run(f"""
id: disabled-tasks
namespace: test
tasks:
  - {{id: off, {OK}, disabled: true}}
  - id: off-group
    type: io.kestra.plugin.core.flow.Sequential
    disabled: true
    tasks: [{{id: inside, {OK}}}]
  - {{id: on, {OK}}}
""")
    assert execution.state.current == State.SUCCESS
    assert states(execution) == {"on": State.SUCCESS}


def test_python_script_runs_with_the_named_python(harrier, tmp_path):
    fake = tmp_path / "mypython"
    fake.write_text('#!/bin/sh\necho "interpreter $0 ran $1"\n')
    fake.chmod(0o755)
    execution = harrier.run(f"""
id: named-python
namespace: test
tasks:
  - id: py
    type: io.kestra.plugin.scripts.python.Script
    python: {fake}
    script: print('hi')
""")
    assert execution.state.current == State.SUCCESS, [r.error for r in execution.task_runs]
    assert [e.message for e in harrier.store.read_logs(execution.id)] == [
        f"interpreter {fake} ran main.py"]
