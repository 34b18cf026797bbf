"""Subflow (io.kestra.plugin.core.flow.Subflow) in embedded mode and on a real
Redis with real worker processes: the child's outputs reach the parent, the
two are linked both ways, failures are transmitted (or not), a parent that
does not wait ends at once, killing the parent kills the child, and a parent
waiting for 20 children holds no worker slot (one worker process suffices)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from harrier.common.celery_app import app as celery_app
from harrier.common.flow import parse_flow
from harrier.common.kv import new_entry
from harrier.common.launch import CORRELATION_ID, create_execution, start_execution
from harrier.common.state import State
from harrier.scheduler.control import kill_execution, restart_execution
from tests.fixtures.modes import Harrier
from tests.fixtures.redis_server import RedisServer
from tests.fixtures.workers import Cluster, make_cluster
from tests.integration.embedded import task_run, wait_for

CHILD = """
id: child
namespace: team.sub
inputs:
  - id: name
    type: STRING
  - id: fail
    type: BOOLEAN
    defaults: false
tasks:
  - id: hello
    type: io.kestra.plugin.core.debug.Return
    format: "hello {{ inputs.name }}"
  - id: maybe_fail
    type: io.kestra.plugin.core.execution.Fail
    runIf: "{{ inputs.fail }}"
outputs:
  - id: greeting
    type: STRING
    value: "{{ outputs.hello.value }}"
"""

SLOW_CHILD = """
id: slow
namespace: team.sub
tasks:
  - id: nap
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT60S
"""


def _deploy(harrier: Harrier, text: str) -> None:
    flow = parse_flow(text, "child.yaml")
    harrier.store.put_flow(flow.namespace, flow.id, flow.source)


def test_child_outputs_and_links_both_ways(harrier: Harrier) -> None:
    _deploy(harrier, CHILD)
    done = harrier.run("""
id: parent
namespace: team
labels:
  team: data
tasks:
  - id: call
    type: io.kestra.plugin.core.flow.Subflow
    namespace: team.sub
    flowId: child
    inputs:
      name: "{{ execution.id }}"
    labels:
      day: monday
  - id: use
    type: io.kestra.plugin.core.debug.Return
    format: "{{ outputs.call.outputs.greeting }}"
""")
    assert done.state.current == State.SUCCESS, done.error
    call = task_run(done, "call")
    child_id = call.outputs["executionId"]
    assert call.outputs["state"] == "SUCCESS"
    assert task_run(done, "use").outputs["value"] == f"hello {done.id}"
    child = harrier.store.get_execution(child_id)
    assert child.state.current == State.SUCCESS
    assert child.trigger is not None and child.trigger["type"] == \
        "io.kestra.plugin.core.flow.Subflow"
    variables = child.trigger["variables"]
    assert (variables["executionId"], variables["taskRunId"], variables["flowId"]) == \
        (done.id, call.id, "parent")
    # Not inherited (inheritLabels false) but the chain's correlation id is.
    assert child.labels == {CORRELATION_ID: done.id, "day": "monday"}


def test_inherit_labels_passes_the_parents_labels(harrier: Harrier) -> None:
    _deploy(harrier, CHILD)
    done = harrier.run("""
id: parent_labels
namespace: team
labels:
  team: data
tasks:
  - id: call
    type: io.kestra.plugin.core.flow.Subflow
    namespace: team.sub
    flowId: child
    inheritLabels: true
    inputs:
      name: x
""")
    child = harrier.store.get_execution(task_run(done, "call").outputs["executionId"])
    assert child.labels["team"] == "data"
    assert child.labels[CORRELATION_ID] == done.id


def test_failed_child_fails_the_parent_unless_transmit_failed_is_false(
        harrier: Harrier) -> None:
    _deploy(harrier, CHILD)
    template = """
id: parent_fail
namespace: team
tasks:
  - id: call
    type: io.kestra.plugin.core.flow.Subflow
    namespace: team.sub
    flowId: child
    transmitFailed: {transmit}
    inputs:
      name: x
      fail: true
  - id: after
    type: io.kestra.plugin.core.log.Log
    message: went on
"""
    failed = harrier.run(template.format(transmit="true"))
    assert failed.state.current == State.FAILED
    call = task_run(failed, "call")
    assert call.state.current == State.FAILED and call.outputs["state"] == "FAILED"
    assert "after" not in {r.task_id for r in failed.task_runs}

    tolerant = harrier.run(template.format(transmit="false"))
    assert tolerant.state.current == State.SUCCESS
    assert task_run(tolerant, "call").outputs["state"] == "FAILED"
    assert task_run(tolerant, "after").state.current == State.SUCCESS


def test_a_plain_child_that_ends_in_one_step_completes_the_parent(harrier: Harrier) -> None:
    """A child without outputs, errors or finally ends in the store's last
    step (no finisher): that path must tell the parent too."""
    _deploy(harrier, """
id: plain
namespace: team.sub
tasks:
  - id: only
    type: io.kestra.plugin.core.log.Log
    message: done
""")
    done = harrier.run("""
id: waits_for_plain
namespace: team
tasks:
  - id: call
    type: io.kestra.plugin.core.flow.Subflow
    namespace: team.sub
    flowId: plain
""")
    assert done.state.current == State.SUCCESS
    assert task_run(done, "call").outputs["state"] == "SUCCESS"


def test_wait_false_ends_at_once_and_the_child_runs_on(harrier: Harrier) -> None:
    _deploy(harrier, SLOW_CHILD)
    done = harrier.run("""
id: fire_and_forget
namespace: team
tasks:
  - id: call
    type: io.kestra.plugin.core.flow.Subflow
    namespace: team.sub
    flowId: slow
    wait: false
""")
    assert done.state.current == State.SUCCESS
    child_id = task_run(done, "call").outputs["executionId"]
    assert not harrier.store.execution_state(child_id).terminated
    kill_execution(harrier.store, child_id, app=harrier.app, settings=harrier.settings)
    assert harrier.store.wait_terminal(child_id, 60).state.current == State.KILLED


def test_killing_the_parent_kills_the_waiting_child(harrier: Harrier) -> None:
    _deploy(harrier, SLOW_CHILD)
    parent = harrier.start("""
id: killed_parent
namespace: team
tasks:
  - id: call
    type: io.kestra.plugin.core.flow.Subflow
    namespace: team.sub
    flowId: slow
""")
    child_id = wait_for(lambda: next(
        (r.outputs.get("executionId") for r in harrier.store.task_runs(parent.id)
         if r.task_id == "call" and r.outputs.get("executionId")), None))
    wait_for(lambda: any(r.task_id == "nap" and r.state.current == State.RUNNING
                         for r in harrier.store.task_runs(child_id)))
    kill_execution(harrier.store, parent.id, app=harrier.app, settings=harrier.settings)
    assert harrier.store.wait_terminal(parent.id, 60).state.current == State.KILLED
    assert harrier.store.wait_terminal(child_id, 60).state.current == State.KILLED


def test_revision_pins_the_childs_revision(harrier: Harrier) -> None:
    _deploy(harrier, CHILD.replace('"hello ', '"hi '))
    first = harrier.store.get_flow("team.sub", "child").revision
    _deploy(harrier, CHILD.replace('"hello ', '"bonjour '))
    done = harrier.run(f"""
id: pinned
namespace: team
tasks:
  - id: call
    type: io.kestra.plugin.core.flow.Subflow
    namespace: team.sub
    flowId: child
    revision: {first}
    inputs:
      name: x
""")
    call = task_run(done, "call")
    assert call.outputs["outputs"]["greeting"] == "hi x"
    assert harrier.store.get_execution(call.outputs["executionId"]).flow_revision == first


def test_restarting_a_failed_parent_starts_a_new_child(harrier: Harrier) -> None:
    _deploy(harrier, """
id: flaky
namespace: team.sub
tasks:
  - id: maybe_fail
    type: io.kestra.plugin.core.execution.Fail
    condition: "{{ kv('fail_child') }}"
""")
    harrier.store.kv_put(new_entry("team.sub", "fail_child", True))
    failed = harrier.run("""
id: restartable
namespace: team
tasks:
  - id: call
    type: io.kestra.plugin.core.flow.Subflow
    namespace: team.sub
    flowId: flaky
""")
    assert failed.state.current == State.FAILED
    first_child = task_run(failed, "call").outputs["executionId"]
    harrier.store.kv_put(new_entry("team.sub", "fail_child", False))
    restart_execution(harrier.store, harrier.app, failed.id, settings=harrier.settings)
    done = wait_for(lambda: (e := harrier.store.get_execution(failed.id)).state.current
                    .terminated and e.state.current != State.FAILED and e, timeout=90)
    assert done.state.current == State.SUCCESS, done.error
    second_child = task_run(done, "call").outputs["executionId"]
    assert second_child != first_child
    assert harrier.store.get_execution(first_child).state.current == State.FAILED
    assert harrier.store.get_execution(second_child).state.current == State.SUCCESS


def test_unknown_flow_fails_the_task_with_its_name(harrier: Harrier) -> None:
    done = harrier.run("""
id: missing_child
namespace: team
tasks:
  - id: call
    type: io.kestra.plugin.core.flow.Subflow
    namespace: team.sub
    flowId: nowhere
""")
    assert done.state.current == State.FAILED
    assert "'team.sub'.'nowhere'" in (task_run(done, "call").error or "")


def test_system_labels_are_refused_at_validation() -> None:
    with pytest.raises(Exception, match="system labels"):
        parse_flow("""
id: bad
namespace: team
tasks:
  - id: call
    type: io.kestra.plugin.core.flow.Subflow
    namespace: team.sub
    flowId: child
    labels:
      system.correlationId: mine
""", "bad.yaml")


@pytest.fixture
def one_worker(redis_server: RedisServer, tmp_path: Path) -> Iterator[Cluster]:
    """One worker process with one slot: a parent that held its slot while its
    children ran would never finish."""
    if not redis_server.running:
        redis_server.start()
    redis_server.client().flushall()
    made = make_cluster(redis_server.url, redis_server.url, tmp_path)
    try:
        made.start_worker("only", concurrency=1)
        yield made
    finally:
        made.stop_all()


@pytest.mark.slow
def test_twenty_subflows_complete_with_one_worker_process(one_worker: Cluster) -> None:
    store = one_worker.store
    child = parse_flow(CHILD, "child.yaml")
    store.put_flow(child.namespace, child.id, child.source)
    flow = parse_flow("""
id: fan_out
namespace: team
tasks:
  - id: each
    type: io.kestra.plugin.core.flow.ForEach
    values: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20]
    concurrencyLimit: 0
    tasks:
      - id: call
        type: io.kestra.plugin.core.flow.Subflow
        namespace: team.sub
        flowId: child
        inputs:
          name: "{{ taskrun.value }}"
""", "fan_out.yaml")
    execution = create_execution(store, flow, {})
    start_execution(celery_app, flow, execution, store=store)
    done = store.wait_terminal(execution.id, 240)
    assert done.state.current == State.SUCCESS, done.error
    calls = [r for r in done.task_runs if r.task_id == "call"]
    assert len(calls) == 20
    assert sorted(int(r.outputs["outputs"]["greeting"].split()[1]) for r in calls) == \
        list(range(1, 21))
