"""Flow triggers (io.kestra.plugin.core.trigger.Flow): a chain of three flows
ingest -> aggregate -> publish where aggregate fails, so publish does not run
and an alert flow does; in embedded mode and with two real scheduler replicas
and a real worker on Redis (one downstream execution per upstream end); an
end whose reader died before acknowledging it is handled by another reader,
once."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from harrier.common.celery_app import app
from harrier.common.flow import parse_flow
from harrier.common.launch import CORRELATION_ID, create_execution, start_execution
from harrier.common.settings import Settings
from harrier.common.state import State
from harrier.common.store import ExecutionQuery, ExecutionStore
from harrier.worker.embedded import EmbeddedRuntime
from harrier.worker.flow_triggers import FlowTriggerReader
from harrier.worker.runtime import Runtime
from tests.fixtures.redis_server import RedisServer
from tests.fixtures.workers import make_cluster
from tests.integration.embedded import task_run, wait_for

INGEST = """
id: ingest
namespace: team.spark
tasks:
  - id: load
    type: io.kestra.plugin.core.debug.Return
    format: "42"
outputs:
  - id: rows
    type: INT
    value: "{{ outputs.load.value }}"
"""
AGGREGATE = """
id: aggregate
namespace: team.spark
inputs:
  - id: rows
    type: INT
tasks:
  - id: check
    type: io.kestra.plugin.core.execution.Fail
    errorMessage: "aggregate of {{ inputs.rows }} rows failed"
triggers:
  - id: after_ingest
    type: io.kestra.plugin.core.trigger.Flow
    inputs:
      rows: "{{ trigger.outputs.rows }}"
    conditions:
      - type: io.kestra.plugin.core.condition.ExecutionFlow
        namespace: team.spark
        flowId: ingest
      - type: io.kestra.plugin.core.condition.ExecutionStatus
        in: [SUCCESS]
"""
PUBLISH = """
id: publish
namespace: team.spark
tasks:
  - id: push
    type: io.kestra.plugin.core.log.Log
    message: published
triggers:
  - id: after_aggregate
    type: io.kestra.plugin.core.trigger.Flow
    conditions:
      - type: io.kestra.plugin.core.condition.ExecutionFlow
        namespace: team.spark
        flowId: aggregate
      - type: io.kestra.plugin.core.condition.ExecutionStatus
        in: [SUCCESS, WARNING]
"""
ALERT = """
id: alert
namespace: ops
tasks:
  - id: describe
    type: io.kestra.plugin.core.debug.Return
    format: >-
      {{ trigger.namespace }}.{{ trigger.flowId }} {{ trigger.state }}
      at {{ trigger.firstFailedTaskId }} ({{ trigger.executionId }})
triggers:
  - id: on_failure
    type: io.kestra.plugin.core.trigger.Flow
    states: [FAILED, KILLED]
    conditions:
      - type: io.kestra.plugin.core.condition.ExecutionNamespace
        namespace: team
        comparison: PREFIX
"""


def deploy(store: ExecutionStore, *texts: str) -> None:
    for text in texts:
        flow = parse_flow(text, "flow.yaml")
        store.put_flow(flow.namespace, flow.id, flow.source)


def executions_of(store: ExecutionStore, namespace: str, flow_id: str) -> list:
    found, _ = store.search_executions(ExecutionQuery(namespace=namespace, flow_id=flow_id,
                                                      limit=1000))
    return found


def check_chain(store: ExecutionStore, ingest_id: str, runs: int = 1) -> None:
    aggregates = wait_for(lambda: len(executions_of(store, "team.spark", "aggregate")) >= runs
                          and executions_of(store, "team.spark", "aggregate"), timeout=120)
    alerts = wait_for(lambda: len(executions_of(store, "ops", "alert")) >= runs
                      and executions_of(store, "ops", "alert"), timeout=120)
    for alert in alerts:
        ended = store.wait_terminal(alert.id, 90)
        assert ended.state.current == State.SUCCESS, [r.error for r in ended.task_runs]
    assert len(aggregates) == runs and len(alerts) == runs
    aggregate = store.get_execution(aggregates[0].id)
    assert aggregate.state.current == State.FAILED
    assert aggregate.inputs == {"rows": 42}
    assert aggregate.trigger is not None and aggregate.trigger["id"] == "after_ingest"
    assert aggregate.trigger["variables"]["flowId"] == "ingest"
    # One alert per failed aggregate, each naming its own.
    described = sorted(task_run(store.get_execution(a.id), "describe").outputs["value"]
                       for a in alerts)
    assert described == sorted(f"team.spark.aggregate FAILED at check ({a.id})"
                               for a in aggregates)
    done_alert = store.get_execution(alerts[0].id)
    if runs == 1:
        assert aggregate.trigger["variables"]["executionId"] == ingest_id
        # The whole chain shares the first execution's correlation id.
        assert aggregate.labels[CORRELATION_ID] == ingest_id
        assert done_alert.labels[CORRELATION_ID] == ingest_id


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[Runtime]:
    settings = Settings.from_env({}).with_overrides(work_root=tmp_path, embedded_concurrency=4)
    with EmbeddedRuntime(settings) as runtime:
        yield runtime


def test_a_chain_of_flows_stops_where_a_flow_fails_embedded(embedded: Runtime) -> None:
    deploy(embedded.store, INGEST, AGGREGATE, PUBLISH, ALERT)
    ingest = parse_flow(INGEST, "ingest.yaml")
    execution = create_execution(embedded.store, ingest, {}, revision=1)
    start_execution(embedded.app, ingest, execution, store=embedded.store)
    check_chain(embedded.store, execution.id)
    assert executions_of(embedded.store, "team.spark", "publish") == []


@pytest.mark.slow
def test_two_scheduler_replicas_start_one_execution_per_end(redis_server: RedisServer,
                                                            tmp_path: Path) -> None:
    if not redis_server.running:
        redis_server.start()
    redis_server.client().flushall()
    cluster = make_cluster(redis_server.url, redis_server.url, tmp_path)
    try:
        cluster.start_worker("w1", concurrency=2)
        cluster.start_scheduler("s1")
        cluster.start_scheduler("s2")
        deploy(cluster.store, INGEST, AGGREGATE, PUBLISH, ALERT)
        ingest = parse_flow(INGEST, "ingest.yaml")
        for _ in range(5):
            execution = create_execution(cluster.store, ingest, {}, revision=1)
            start_execution(app, ingest, execution, store=cluster.store)
        check_chain(cluster.store, execution.id, runs=5)
        # Nothing more arrives late: still five, and publish never ran.
        for flow_id in ("aggregate", "ingest"):
            assert len(executions_of(cluster.store, "team.spark", flow_id)) == 5
        assert executions_of(cluster.store, "team.spark", "publish") == []
    finally:
        cluster.stop_all()


@pytest.mark.slow
def test_an_end_a_dead_reader_took_is_handled_by_another_once(redis_server: RedisServer,
                                                              tmp_path: Path) -> None:
    """A reader that takes an end and dies before acknowledging it is what a
    killed scheduler leaves: here the first reader reads and never acknowledges."""
    if not redis_server.running:
        redis_server.start()
    redis_server.client().flushall()
    cluster = make_cluster(redis_server.url, redis_server.url, tmp_path)
    try:
        cluster.start_worker("w1", concurrency=2)
        runtime = Runtime(cluster.settings, cluster.store, app)
        dead = FlowTriggerReader(runtime, "dead", claim_idle_ms=300)
        alive = FlowTriggerReader(runtime, "alive", claim_idle_ms=300)
        assert dead.step(block_ms=10) == []  # joins the group before anything ends
        deploy(cluster.store, INGEST, AGGREGATE)
        ingest = parse_flow(INGEST, "ingest.yaml")
        execution = create_execution(cluster.store, ingest, {}, revision=1)
        start_execution(app, ingest, execution, store=cluster.store)
        cluster.store.wait_terminal(execution.id, 90)
        taken = wait_for(lambda: cluster.store.read_ended("dead", block_ms=100))
        assert [e[1] for e in taken] == [execution.id]  # ... and "dead" dies here
        started = wait_for(lambda: alive.step(block_ms=100), timeout=30)
        assert len(started) == 1
        # The dead reader's handling, had it come back, starts nothing new.
        from harrier.worker.flow_triggers import fire_flow_triggers

        again = fire_flow_triggers(runtime, alive.index, taken[0][0], execution.id)
        assert again == started
        assert len(executions_of(cluster.store, "team.spark", "aggregate")) == 1
    finally:
        cluster.stop_all()


def test_inputs_that_do_not_fit_start_nothing_and_say_why(embedded: Runtime) -> None:
    deploy(embedded.store, INGEST, AGGREGATE.replace('"{{ trigger.outputs.rows }}"',
                                                     '"many {{ trigger.outputs.rows }}"'))
    ingest = parse_flow(INGEST, "ingest.yaml")
    execution = create_execution(embedded.store, ingest, {}, revision=1)
    start_execution(embedded.app, ingest, execution, store=embedded.store)
    message = wait_for(lambda: next((e.message for e in embedded.store.read_logs(execution.id)
                                     if "Flow trigger after_ingest" in e.message), None))
    assert "team.spark.aggregate not started" in message and "rows" in message
    assert executions_of(embedded.store, "team.spark", "aggregate") == []
