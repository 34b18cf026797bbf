"""Flow triggers across real processes: a real Redis, two prefork workers and
two `harrier scheduler` replicas. A chain ingest -> aggregate -> publish stops
where aggregate fails; every upstream end starts exactly one downstream
execution; an end read by a replica killed with -9 before acknowledging it is
completed by another replica."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from harrier.common.flow import parse_flow
from harrier.common.state import State
from harrier.common.store import ExecutionQuery
from harrier.scheduler.executions import create_execution, start_execution
from harrier.scheduler.flow_triggers import GROUP, triggered_execution_id
from tests.fixtures.redis_server import RedisServer
from tests.fixtures.workers import Cluster, two_workers
from tests.integration.embedded import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


@pytest.fixture
def cluster(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[Cluster]:
    """Two prefork workers on an empty Redis, schedulers started by each test
    (the shared `cluster` fixture keeps its store and schedulers across tests)."""
    if not redis_server.running:
        redis_server.start()
    with two_workers(redis_server, tmp_path_factory.mktemp("flowtrigger")) as made:
        yield made

INGEST = """id: ingest
namespace: spark.pipeline
outputs:
  - id: day
    type: STRING
    value: "2026-03-01"
tasks:
  - id: load
    type: io.kestra.plugin.core.log.Log
    message: ingesting
"""


def _after(flow_id: str, upstream: str, tasks: str) -> str:
    return f"""id: {flow_id}
namespace: spark.pipeline
inputs:
  - id: day
    type: STRING
tasks:
{tasks}
triggers:
  - id: after_{upstream}
    type: io.kestra.plugin.core.trigger.Flow
    inputs:
      day: "{{{{ trigger.outputs.day ?? 'none' }}}}"
    conditions:
      - type: io.kestra.plugin.core.condition.ExecutionFlow
        namespace: spark.pipeline
        flowId: {upstream}
      - type: io.kestra.plugin.core.condition.ExecutionStatus
        in: [SUCCESS]
"""


FAILING_AGGREGATE = _after("aggregate", "ingest", """  - id: aggregate
    type: io.kestra.plugin.core.execution.Fail
    errorMessage: "aggregation of {{ inputs.day }} failed"
""")
AGGREGATE = _after("aggregate", "ingest", """  - id: aggregate
    type: io.kestra.plugin.core.log.Log
    message: "aggregating {{ inputs.day }} after {{ trigger.executionId }}"
""")
PUBLISH = _after("publish", "aggregate", """  - id: publish
    type: io.kestra.plugin.core.log.Log
    message: publishing
""")


def _start(cluster: Cluster, text: str) -> str:
    flow = parse_flow(text, "ingest.yaml")
    execution = create_execution(cluster.store, flow, {})
    from harrier.common.celery_app import app  # lazy: configured by the cluster fixture

    start_execution(app, flow, execution, store=cluster.store)
    return execution.id


def _executions(cluster: Cluster, flow_id: str) -> list[Any]:
    found, _ = cluster.store.search_executions(ExecutionQuery(
        namespace="spark.pipeline", flow_id=flow_id, limit=1000))
    return found


def _all_ends_handled(cluster: Cluster) -> bool:
    """Every end in the stream was delivered and acknowledged (nothing left to trigger)."""
    redis = cluster.store.redis
    groups = redis.xinfo_groups(cluster.store.ended_stream)
    [group] = [g for g in groups if g["name"] == GROUP.encode()]
    return group["pending"] == 0 and group["lag"] == 0


def _start_schedulers(cluster: Cluster) -> None:
    # A replica loads the flows before its loops start: pushed before, they are armed.
    for name in ("s1", "s2"):
        scheduler = cluster.start_scheduler(name)
        wait_for(lambda s=scheduler: "flow trigger loop started" in s.log(), timeout=60)


def _push(cluster: Cluster, *sources: str) -> None:
    for source in sources:
        flow = parse_flow(source, "f.yaml")
        cluster.store.put_flow(flow.namespace, flow.id, source)


def test_chain_stops_where_aggregate_fails_and_each_end_triggers_once(cluster: Cluster) -> None:
    _push(cluster, FAILING_AGGREGATE, PUBLISH)
    _start_schedulers(cluster)
    ingests = [_start(cluster, INGEST) for _ in range(4)]
    for ingest in ingests:
        assert cluster.store.wait_terminal(ingest, 90).state.current == State.SUCCESS
    wait_for(lambda: len([e for e in _executions(cluster, "aggregate")
                          if e.state.current.terminated]) == 4, timeout=120)
    aggregates = _executions(cluster, "aggregate")
    # Exactly one aggregate per ingest, across two replicas.
    assert sorted(e.trigger["executionId"] for e in aggregates) == sorted(ingests)
    for execution in aggregates:
        assert execution.state.current == State.FAILED
        assert execution.inputs == {"day": "2026-03-01"}
    wait_for(lambda: _all_ends_handled(cluster), timeout=90)
    assert _executions(cluster, "publish") == []  # aggregate failed: publish never ran
    assert len(_executions(cluster, "aggregate")) == 4
    assert sum("fired flow spark.pipeline.aggregate" in s.log()
               for s in cluster.schedulers) >= 1


def test_a_successful_chain_runs_to_publish(cluster: Cluster) -> None:
    _push(cluster, AGGREGATE, PUBLISH)
    _start_schedulers(cluster)
    ingest = _start(cluster, INGEST)
    [aggregate] = wait_for(lambda: _executions(cluster, "aggregate"), timeout=120)
    ended = cluster.store.wait_terminal(aggregate.id, 90)
    assert ended.state.current == State.SUCCESS, (ended.error, ended.task_runs)
    [publish] = wait_for(lambda: _executions(cluster, "publish"), timeout=120)
    done = cluster.store.wait_terminal(publish.id, 90)
    assert done.state.current == State.SUCCESS
    assert aggregate.trigger["executionId"] == ingest
    assert done.trigger["executionId"] == aggregate.id
    assert done.trigger["flowId"] == "aggregate"
    assert done.trigger["state"] == "SUCCESS"
    # The whole chain carries the correlation id of the ingest that started it.
    assert done.labels["system.correlationId"] == ingest
    assert aggregate.labels["system.correlationId"] == ingest


# Reads one end from the stream as replica "doomed" and dies (kill -9) at the
# fault hook named by its argument: `after_read` (before doing anything with
# the end) or `after_create` (the triggered execution stored, not started). The
# hooks are the only fake here, to hit those moments every time.
_DOOMED_REPLICA = """
import os, signal, sys
from harrier.common.celery_app import configure_app
from harrier.common.redis_store import RedisStore
from harrier.common.settings import Settings
from harrier.scheduler import firing, flow_triggers
from harrier.scheduler.flow_catalog import FlowCatalog

settings = Settings.from_env()
store = RedisStore.from_settings(settings)
context = firing.FireContext(store, configure_app(settings), store.redis, replica="doomed")
catalog = FlowCatalog(None, store)
catalog.refresh()
assert catalog.flow_triggers(), "no flow trigger loaded"
setattr(flow_triggers, sys.argv[1], lambda _: os.kill(os.getpid(), signal.SIGKILL))
loop = flow_triggers.FlowTriggerLoop(catalog, context)
for _ in range(100):
    loop.step()
raise SystemExit("nothing was read")
"""


@pytest.mark.parametrize("hook", ["after_read", "after_create"])
def test_an_end_read_by_a_replica_killed_before_acknowledging_it_is_completed(
        cluster: Cluster, hook: str) -> None:
    _push(cluster, AGGREGATE)
    ingest = _start(cluster, INGEST)  # no scheduler yet: the end waits in the stream
    assert cluster.store.wait_terminal(ingest, 90).state.current == State.SUCCESS
    doomed = subprocess.run([sys.executable, "-c", _DOOMED_REPLICA, hook], env=cluster.env,
                            capture_output=True, timeout=120)
    assert doomed.returncode == -signal.SIGKILL, doomed.stderr.decode()[-2000:]
    redis = cluster.store.redis
    [pending] = redis.xpending_range(cluster.store.ended_stream, GROUP, "-", "+", 10)
    assert pending["consumer"] == b"doomed"
    left = _executions(cluster, "aggregate")
    if hook == "after_read":
        assert left == []  # it died before creating anything
    else:
        assert [e.state.current for e in left] == [State.CREATED]  # stored, never started

    # The replicas take the dead one's end over after 2 s instead of 30 s.
    cluster.env["HARRIER_FLOW_TRIGGER_CLAIM_IDLE"] = "2"
    _start_schedulers(cluster)
    [aggregate] = wait_for(lambda: _executions(cluster, "aggregate"), timeout=150)
    assert aggregate.id == triggered_execution_id(ingest, "spark.pipeline/aggregate/after_ingest")
    assert cluster.store.wait_terminal(aggregate.id, 90).state.current == State.SUCCESS
    wait_for(lambda: _all_ends_handled(cluster), timeout=90)
    assert len(_executions(cluster, "aggregate")) == 1
    assert any("taking over 1 ended execution" in s.log() for s in cluster.schedulers)
