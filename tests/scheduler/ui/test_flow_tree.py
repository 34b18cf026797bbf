"""The flow tree the execution page's timeline is drawn from."""

from __future__ import annotations

from harrier.common.flow import parse_flow
from harrier.scheduler.ui.flow_tree import task_tree

FLOW = """
id: tree
namespace: test
tasks:
  - id: decide
    type: io.kestra.plugin.core.flow.If
    condition: "true"
    then: [{id: yes, type: io.kestra.plugin.core.log.Log, message: y}]
    else: [{id: no, type: io.kestra.plugin.core.log.Log, message: n}]
  - id: pick
    type: io.kestra.plugin.core.flow.Switch
    value: a
    cases:
      a: [{id: case_a, type: io.kestra.plugin.core.log.Log, message: a}]
      b: [{id: case_b, type: io.kestra.plugin.core.log.Log, message: b}]
  - id: both
    type: io.kestra.plugin.core.flow.Parallel
    tasks:
      - {id: left, type: io.kestra.plugin.core.log.Log, message: l}
      - {id: right, type: io.kestra.plugin.core.log.Log, message: r}
"""


def test_if_and_switch_show_only_the_branch_taken_and_parallel_shows_all() -> None:
    nodes = {node["id"]: node for node in task_tree(parse_flow(FLOW))["groups"][0]["tasks"]}
    # "decide": once the flowable ran, the timeline keeps only the branch with runs.
    assert nodes["decide"]["layout"] == "decide"
    assert nodes["pick"]["layout"] == "decide"
    assert nodes["both"]["layout"] is None
    assert [g["label"] for g in nodes["decide"]["groups"]] == ["then", "else"]
    assert [g["label"] for g in nodes["pick"]["groups"]] == ["cases.a", "cases.b"]
