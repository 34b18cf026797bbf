"""Flow parsing and validation: Kestra's syntax accepted, every mistake reported
with file:line:column, field path and what was expected."""

from __future__ import annotations

from pathlib import Path

import pytest

from harrier.common.errors import FlowValidationError
from harrier.common.flow import load_flow_file, parse_flow

SEED = Path(__file__).resolve().parents[3] / "shared" / "seed" / "flows"
EXAMPLES = Path(__file__).resolve().parents[2] / "flows"


def problems(text: str) -> list[str]:
    with pytest.raises(FlowValidationError) as caught:
        parse_flow(text, "flows/bad.yaml")
    return [str(p) for p in caught.value.problems]


@pytest.mark.parametrize("path", sorted(SEED.glob("*.yaml")), ids=lambda p: p.name)
def test_every_seed_flow_validates_unchanged(path):
    flow = load_flow_file(path)
    assert flow.tasks and flow.namespace


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_every_example_flow_validates(path):
    load_flow_file(path)


def test_old_and_new_parallel_type_names_are_one_class():
    old = parse_flow("""
id: a
namespace: n
tasks:
  - id: p
    type: io.kestra.core.tasks.flows.Parallel
    tasks: [{id: x, type: io.kestra.plugin.core.log.Log, message: hi}]
""")
    new = parse_flow(old.source.replace("io.kestra.core.tasks.flows.Parallel",
                                        "io.kestra.plugin.core.flow.Parallel"))
    assert type(old.tasks[0]) is type(new.tasks[0])


def test_malformed_yaml_names_line_and_column():
    [message] = problems("id: a\nnamespace: n\ntasks:\n  - id: [x\n    type: y\n")
    assert message.startswith("flows/bad.yaml:5:")
    assert "invalid YAML" in message


def test_unknown_task_type_lists_the_known_ones():
    [message] = problems("""id: a
namespace: n
tasks:
  - id: t
    type: io.kestra.plugin.spark.SparkSubmitt
""")
    assert message.startswith("flows/bad.yaml:5:5: tasks[0].type: unknown task type")
    assert "io.kestra.plugin.spark.SparkCLI" in message
    assert "io.kestra.plugin.core.flow.Parallel" in message


def test_missing_and_unknown_properties_are_named():
    found = problems("""id: a
namespace: n
tasks:
  - id: t
    type: io.kestra.plugin.scripts.shell.Commands
    comands: ["echo hi"]
""")
    assert any("tasks[0].commands: missing required property 'commands'" in p for p in found)
    assert any(p.startswith("flows/bad.yaml:6:5: tasks[0].comands: unknown property 'comands'")
               and "did you mean 'commands'?" in p for p in found)


def test_duplicate_task_ids_point_at_the_second_one():
    [message] = problems("""id: a
namespace: n
tasks:
  - id: same
    type: io.kestra.plugin.core.log.Log
    message: one
  - id: p
    type: io.kestra.plugin.core.flow.Parallel
    tasks:
      - id: same
        type: io.kestra.plugin.core.log.Log
        message: two
""")
    assert message.startswith("flows/bad.yaml:10:")
    assert "duplicate task id 'same'" in message


def test_bad_retry_duration_says_what_was_expected():
    [message] = problems("""id: a
namespace: n
tasks:
  - id: t
    type: io.kestra.plugin.core.log.Log
    message: hi
    retry:
      type: constant
      interval: five minutes
      maxAttempts: 3
""")
    assert message.startswith("flows/bad.yaml:9:7: tasks[0].retry.interval:")
    assert "'five minutes' is not an ISO-8601 duration (e.g. PT5M)" in message


def test_bad_timeout_is_reported_on_its_line():
    [message] = problems("""id: a
namespace: n
tasks:
  - id: t
    type: io.kestra.plugin.core.log.Log
    message: hi
    timeout: 10 minutes
""")
    assert message.startswith("flows/bad.yaml:7:5: tasks[0].timeout:")


def test_bad_cron_names_the_trigger():
    [message] = problems("""id: a
namespace: n
tasks:
  - id: t
    type: io.kestra.plugin.core.log.Log
    message: hi
triggers:
  - id: nightly
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "61 * * * *"
""")
    assert message.startswith("flows/bad.yaml:")
    assert "triggers[0]" in message and "61 * * * *" in message


def test_bad_timezone_names_the_trigger():
    [message] = problems("""id: a
namespace: n
tasks: [{id: t, type: io.kestra.plugin.core.log.Log, message: hi}]
triggers:
  - {id: nightly, type: io.kestra.plugin.core.trigger.Schedule, cron: "@daily",
     timezone: Mars/Olympus}
""")
    assert "triggers[0]" in message and "Mars/Olympus" in message


def test_unknown_input_type_is_rejected():
    found = problems("""id: a
namespace: n
inputs:
  - id: day
    type: DAYTE
tasks: [{id: t, type: io.kestra.plugin.core.log.Log, message: hi}]
""")
    assert any("inputs[0]" in p and "DAYTE" in p for p in found)


def test_every_problem_is_reported_at_once():
    found = problems("""id: a
namespace: n
tasks:
  - id: one
    type: nope.Nope
  - id: two
    type: io.kestra.plugin.core.log.Log
""")
    assert len(found) == 2


def test_yes_and_no_stay_strings_as_in_kestra():
    flow = parse_flow("""id: a
namespace: n
tasks: [{id: t, type: io.kestra.plugin.core.log.Log, message: yes}]
""")
    assert flow.tasks[0].message == "yes"


def test_a_document_that_is_not_a_mapping_is_rejected():
    [message] = problems("- just\n- a list\n")
    assert "a flow must be a mapping" in message


def test_unreadable_file_is_a_validation_error(tmp_path):
    with pytest.raises(FlowValidationError, match="cannot read file"):
        load_flow_file(tmp_path / "missing.yaml")


def test_templates_are_checked_before_anything_runs():
    found = problems("""id: a
namespace: n
inputs:
  - id: day
    type: DATE
tasks:
  - id: t
    type: io.kestra.plugin.scripts.shell.Commands
    commands:
      - echo {{ inputs.dya }}
  - id: u
    type: io.kestra.plugin.core.log.Log
    message: "{{ execution.startDate | dat('yyyy') }}"
  - id: v
    type: io.kestra.plugin.core.log.Log
    message: "{{ envs.HOME }}"
""")
    assert found[0].startswith("flows/bad.yaml:10:9: tasks[0].commands[0]:")
    assert "inputs.dya" in found[0] and "declared: day" in found[0]
    assert "tasks[1].message" in found[1] and "No filter named 'dat'" in found[1]
    assert "tasks[2].message" in found[2] and "unknown variable 'envs'" in found[2]


def test_templates_with_loops_and_kestra_functions_pass_the_check():
    parse_flow("""id: a
namespace: n
tasks:
  - id: t
    type: io.kestra.plugin.core.log.Log
    message: >-
      {% for x in [1, 2] %}{{ x }}{% endfor %} {{ now() | dateAdd(-1, 'DAYS') | date('yyyy') }}
      {{ trigger.body ?? 'none' }} {{ secret('TOKEN') | length }} {{ taskrun.attemptsCount }}
""")


def _flow_with_tasks(count: int) -> str:
    tasks = "".join(f"      - id: t{i}\n        type: io.kestra.plugin.core.log.Log\n"
                    f"        message: hi\n" for i in range(count - 1))
    return ("id: big\nnamespace: limits\ntasks:\n  - id: group\n"
            "    type: io.kestra.plugin.core.flow.Sequential\n    tasks:\n" + tasks)


def test_a_flow_over_the_task_limit_is_refused_with_the_count_and_the_limit() -> None:
    from harrier.common.flow import MAX_FLOW_TASKS

    assert len(list(parse_flow(_flow_with_tasks(MAX_FLOW_TASKS)).all_tasks())) == MAX_FLOW_TASKS
    with pytest.raises(FlowValidationError) as raised:
        parse_flow(_flow_with_tasks(MAX_FLOW_TASKS + 1), "flows/big.yaml")
    message = str(raised.value)
    assert message.startswith("flows/big.yaml:3:1: tasks:")
    assert f"{MAX_FLOW_TASKS + 1:,} tasks" in message and f"limit is {MAX_FLOW_TASKS:,}" in message
def test_a_tab_indented_file_is_told_so():
    [message] = problems("id: a\nnamespace: n\ntasks:\n"
                         "\t- id: x\n\t  type: io.kestra.plugin.core.log.Log\n")
    assert message.startswith("flows/bad.yaml:4:1:")
    assert "indented with a tab" in message


def test_a_rejected_child_does_not_also_empty_its_parent():
    found = problems("""id: a
namespace: n
tasks:
  - id: branch
    type: io.kestra.plugin.core.flow.If
    condition: "true"
    then:
      - {id: t, type: io.kestra.plugin.core.log.Logg, message: hi}
""")
    assert len(found) == 1, found
    assert "tasks[0].then[0].type" in found[0]


def test_bad_cron_and_bad_timezone_are_both_reported():
    found = problems("""id: a
namespace: n
tasks: [{id: t, type: io.kestra.plugin.core.log.Log, message: hi}]
triggers:
  - id: s
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "61 * * * *"
    timezone: Mars/Olympus
""")
    assert len(found) == 2, found
    assert any("triggers[0].cron" in p and "'61 * * * *'" in p for p in found)
    assert any("triggers[0].timezone" in p and "Mars/Olympus" in p for p in found)


def test_unknown_task_type_and_output_task_suggest_the_nearest():
    [message] = problems("""id: a
namespace: n
tasks:
  - {id: t, type: io.kestra.plugin.core.log.Logg, message: hi}
""")
    assert "did you mean 'io.kestra.plugin.core.log.Log'?" in message
    [message] = problems("""id: a
namespace: n
tasks:
  - {id: extract, type: io.kestra.plugin.core.log.Log, message: hi}
  - {id: t, type: io.kestra.plugin.core.log.Log, message: "{{ outputs.extrct.value }}"}
""")
    assert "did you mean 'extract'?" in message


def test_the_static_check_never_rejects_what_kestra_would_run():
    flow = parse_flow("""id: a
namespace: n
inputs:
  - {id: nested.string, type: STRING, defaults: x}
tasks:
  - id: t
    type: io.kestra.plugin.core.debug.Return
    format: >-
      {{ outputs.not_existing ?? '' }}{{ (outputs.gone ?? 'x') }}{{ true ? 1 : nowhere }}
      {% if outputs.maybe ?? false %}{{ outputs.maybe.value }}{% endif %}
      {{ inputs.nested.string }}{{ outputs.later | default('none') }}
""")
    assert flow.tasks[0].id == "t"
    # What is certainly wrong is still reported.
    broken = flow.source.replace("{{ (outputs", "{{ outputs.x }}{{ (outputs")
    assert "names no task" in problems(broken)[0]


def test_a_dag_limit_other_than_zero_is_refused():
    text = """id: a
namespace: n
tasks:
  - id: graph
    type: io.kestra.plugin.core.flow.Dag
    concurrent: {n}
    tasks:
      - task: {{id: t, type: io.kestra.plugin.core.log.Log, message: hi}}
"""
    assert parse_flow(text.format(n=0)).tasks[0].id == "graph"
    [message] = problems(text.format(n=2))
    assert "only 0 (no limit) is supported on a Dag" in message


def test_explicit_nulls_count_as_absent_also_in_nested_properties():
    flow = parse_flow("""id: a
namespace: n
description: null
concurrency: {limit: 2, behavior: null}
retry: {type: constant, interval: PT1S, maxAttempts: 2, maxDuration: null}
variables: {kept: null}
tasks:
  - id: t
    type: io.kestra.plugin.core.flow.Switch
    value: x
    defaults: null
    cases: {x: [{id: l, type: io.kestra.plugin.core.log.Log, message: hi, workerGroup: null}]}
triggers:
  - id: s
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "@daily"
    timezone: null
    inputs: {who: null}
    conditions:
      - type: io.kestra.plugin.core.condition.Not
        conditions: [{type: io.kestra.plugin.core.condition.Weekend, date: null}]
""")
    assert flow.concurrency is not None and flow.concurrency.behavior == "QUEUE"
    assert flow.retry is not None and flow.retry.max_duration is None
    assert flow.variables == {"kept": None}  # a free-form map: null is a value there
    trigger = flow.triggers[0]
    assert trigger.timezone == "UTC" and trigger.inputs == {"who": None}
