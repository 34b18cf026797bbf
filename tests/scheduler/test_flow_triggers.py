"""Flow triggers driven step by step on a real Redis: executions that end are
read from the store's stream, conditions and preconditions decide, the
triggered execution carries `trigger.*` and its rendered inputs, and an end
seen twice (by two replicas, or again after a crash) starts one execution."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis
from celery import Celery

from harrier.common.celery_app import configure_app
from harrier.common.errors import FlowValidationError
from harrier.common.flow import parse_flow
from harrier.common.redis_store import RedisStore
from harrier.common.settings import Settings
from harrier.common.state import State
from harrier.common.store import ExecutionQuery
from harrier.common.triggers import TimeWindow
from harrier.scheduler.executions import create_execution
from harrier.scheduler.firing import FireContext
from harrier.scheduler.flow_catalog import FlowCatalog, MemoryOrigins
from harrier.scheduler.flow_triggers import (
    FlowTriggerLoop,
    MemoryDecisions,
    RedisDecisions,
    Window,
    triggered_execution_id,
)

UPSTREAM = """id: {id}
namespace: {namespace}
labels:
  team: data
outputs:
  - id: day
    type: STRING
    value: "2026-03-01"
tasks:
  - id: t
    type: io.kestra.plugin.core.log.Log
    message: hi
"""


def _downstream(triggers: str) -> str:
    return f"""id: down
namespace: pipeline
inputs:
  - id: day
    type: STRING
    defaults: none
tasks:
  - id: t
    type: io.kestra.plugin.core.log.Log
    message: "{{{{ trigger.executionId }}}}"
triggers:
{triggers}"""


@pytest.fixture
def app() -> Iterator[Celery]:
    celery_app = configure_app(Settings())  # in-memory transport, no worker
    yield celery_app
    with celery_app.connection_for_write() as connection:
        connection.default_channel.queue_purge("default")


class Replica:
    def __init__(self, flows: Path, store: RedisStore, app: Celery, name: str) -> None:
        self.catalog = FlowCatalog(flows, store, origins=MemoryOrigins())
        self.catalog.refresh()
        self.loop = FlowTriggerLoop(self.catalog, FireContext(store, app, store.redis, name),
                                    block_ms=10)

    def drain(self) -> None:
        while self.loop.step() > 0:
            pass


@pytest.fixture
def store(redis_client: redis.Redis) -> RedisStore:
    return RedisStore(redis_client)


def _end(store: RedisStore, flow_id: str, state: State, namespace: str = "pipeline",
         labels: dict[str, str] | None = None) -> str:
    flow = parse_flow(UPSTREAM.format(id=flow_id, namespace=namespace), "up.yaml")
    execution = create_execution(store, flow, {}, labels=labels, deploy=False)
    store.change_execution_state(execution.id, State.RUNNING)
    store.set_execution_outputs(execution.id, {"day": "2026-03-01"})
    store.change_execution_state(execution.id, state)
    return execution.id


def _triggered(store: RedisStore) -> list:
    found, _ = store.search_executions(ExecutionQuery(namespace="pipeline", flow_id="down",
                                                      limit=1000))
    return found


def test_a_flow_trigger_starts_its_flow_with_trigger_variables_and_inputs(
        tmp_path: Path, store: RedisStore, app: Celery) -> None:
    (tmp_path / "down.yaml").write_text(_downstream("""  - id: after_ingest
    type: io.kestra.plugin.core.trigger.Flow
    inputs:
      day: "{{ trigger.outputs.day }}"
    conditions:
      - type: io.kestra.plugin.core.condition.ExecutionFlow
        namespace: pipeline
        flowId: ingest
      - type: io.kestra.plugin.core.condition.ExecutionStatus
        in: [SUCCESS]
"""))
    replica = Replica(tmp_path, store, app, "r1")
    upstream = _end(store, "ingest", State.SUCCESS)
    _end(store, "ingest", State.FAILED)  # ExecutionStatus: not this one
    _end(store, "other", State.SUCCESS)  # ExecutionFlow: nor this one
    replica.drain()
    [execution] = _triggered(store)
    assert execution.id == triggered_execution_id(upstream, "pipeline/down/after_ingest")
    assert execution.inputs == {"day": "2026-03-01"}
    assert execution.trigger["executionId"] == upstream
    assert execution.trigger["flowId"] == "ingest"
    assert execution.trigger["namespace"] == "pipeline"
    assert execution.trigger["state"] == "SUCCESS"
    assert execution.trigger["outputs"] == {"day": "2026-03-01"}
    assert execution.trigger["type"] == "io.kestra.plugin.core.trigger.Flow"
    assert execution.labels["system.correlationId"] == upstream  # Kestra: the chain's first


def test_an_end_read_by_two_replicas_or_twice_starts_one_execution(
        tmp_path: Path, store: RedisStore, app: Celery) -> None:
    (tmp_path / "down.yaml").write_text(_downstream("""  - id: any_end
    type: io.kestra.plugin.core.trigger.Flow
    conditions:
      - type: io.kestra.plugin.core.condition.ExecutionNamespace
        namespace: pipe
        comparison: PREFIX
"""))
    first, second = Replica(tmp_path, store, app, "r1"), Replica(tmp_path, store, app, "r2")
    ends = [_end(store, "ingest", State.SUCCESS) for _ in range(6)]
    first.drain()
    second.drain()
    # The same ends handled again (as after a crash before the acknowledgement):
    for upstream in ends:
        assert first.loop.handle(upstream)
        assert second.loop.handle(upstream)
    assert sorted(e.trigger["executionId"] for e in _triggered(store)) == sorted(ends)


def test_the_triggered_flow_does_not_trigger_itself_without_a_matching_condition(
        tmp_path: Path, store: RedisStore, app: Celery) -> None:
    (tmp_path / "down.yaml").write_text(_downstream("""  - id: t
    type: io.kestra.plugin.core.trigger.Flow
    states: [FAILED]
    conditions:
      - type: io.kestra.plugin.core.condition.ExecutionLabels
        labels:
          team: data
"""))
    replica = Replica(tmp_path, store, app, "r1")
    _end(store, "ingest", State.SUCCESS, labels={"team": "data"})  # states: FAILED only
    _end(store, "ingest", State.FAILED, labels={"team": "web"})  # labels differ
    failed = _end(store, "ingest", State.FAILED, labels={"team": "data"})
    replica.drain()
    assert [e.trigger["executionId"] for e in _triggered(store)] == [failed]


def test_execution_outputs_condition_reads_the_upstream_outputs(
        tmp_path: Path, store: RedisStore, app: Celery) -> None:
    (tmp_path / "down.yaml").write_text(_downstream("""  - id: t
    type: io.kestra.plugin.core.trigger.Flow
    conditions:
      - type: io.kestra.plugin.core.condition.ExecutionOutputs
        expression: "{{ trigger.outputs.day == '2026-03-01' }}"
  - id: u
    type: io.kestra.plugin.core.trigger.Flow
    conditions:
      - type: io.kestra.plugin.core.condition.ExecutionOutputs
        expression: "{{ trigger.outputs.day == '1999-01-01' }}"
"""))
    replica = Replica(tmp_path, store, app, "r1")
    upstream = _end(store, "ingest", State.SUCCESS)
    replica.drain()
    [execution] = _triggered(store)
    assert execution.id == triggered_execution_id(upstream, "pipeline/down/t")


def test_preconditions_wait_for_every_upstream_flow_then_reset(
        tmp_path: Path, store: RedisStore, app: Celery) -> None:
    (tmp_path / "down.yaml").write_text(_downstream("""  - id: both
    type: io.kestra.plugin.core.trigger.Flow
    preconditions:
      id: both_ingests
      flows:
        - namespace: pipeline
          flowId: ingest_a
          states: [SUCCESS]
        - namespace: pipeline
          flowId: ingest_b
          states: [SUCCESS]
          labels:
            team: data
"""))
    replica = Replica(tmp_path, store, app, "r1")
    _end(store, "ingest_a", State.SUCCESS)
    _end(store, "ingest_a", State.SUCCESS)
    _end(store, "ingest_b", State.FAILED)
    _end(store, "ingest_b", State.SUCCESS, labels={"team": "web"})
    replica.drain()
    assert _triggered(store) == []
    last = _end(store, "ingest_b", State.SUCCESS, labels={"team": "data"})
    replica.drain()
    [execution] = _triggered(store)
    assert execution.trigger["executionId"] == last
    # Reset on success: B again alone does not fire; A then does.
    _end(store, "ingest_b", State.SUCCESS, labels={"team": "data"})
    replica.drain()
    assert len(_triggered(store)) == 1
    _end(store, "ingest_a", State.SUCCESS)
    replica.drain()
    assert len(_triggered(store)) == 2


def test_preconditions_where_filters_on_namespace_state_and_expressions(
        tmp_path: Path, store: RedisStore, app: Celery) -> None:
    (tmp_path / "down.yaml").write_text(_downstream("""  - id: alerts
    type: io.kestra.plugin.core.trigger.Flow
    preconditions:
      id: failures
      where:
        - id: company_failures
          operand: AND
          filters:
            - field: NAMESPACE
              type: STARTS_WITH
              value: company
            - field: STATE
              type: IN
              values: [FAILED, WARNING]
            - field: EXPRESSION
              type: IS_TRUE
              value: "{{ trigger.flowId != 'noisy' }}"
"""))
    replica = Replica(tmp_path, store, app, "r1")
    _end(store, "etl", State.SUCCESS, namespace="company.team")
    _end(store, "etl", State.FAILED, namespace="other")
    _end(store, "noisy", State.FAILED, namespace="company.team")
    warned = _end(store, "etl", State.WARNING, namespace="company.team")
    replica.drain()
    assert [e.trigger["executionId"] for e in _triggered(store)] == [warned]


def test_an_end_recorded_before_any_scheduler_ran_is_not_lost(
        tmp_path: Path, store: RedisStore, app: Celery) -> None:
    (tmp_path / "down.yaml").write_text(_downstream("""  - id: t
    type: io.kestra.plugin.core.trigger.Flow
    conditions:
      - type: io.kestra.plugin.core.condition.ExecutionStatus
        notIn: [FAILED]
"""))
    early = _end(store, "ingest", State.SUCCESS)
    Replica(tmp_path, store, app, "r1").drain()
    assert [e.trigger["executionId"] for e in _triggered(store)] == [early]


@pytest.mark.parametrize(("trigger", "message"), [
    ("conditions: []", "needs `conditions` or `preconditions`"),
    ("states: [RUNNING]\n    conditions: [{type: io.kestra.plugin.core.condition.Expression, "
     "expression: 'true'}]", "not a state an execution ends in"),
    ("preconditions: {id: p, flows: [{namespace: a}], timeWindow: {type: DAILY_TIME_DEADLINE}}",
     "needs `deadline`"),
    ("preconditions: {id: p, flows: [{namespace: a}], timeWindow: {type: SLIDING_WINDOW, "
     "deadline: '09:00:00'}}", "deadline does not apply to a SLIDING_WINDOW window"),
    ("preconditions: {id: p, flows: [{namespace: a}], timeWindow: {window: five minutes}}",
     "not an ISO-8601 duration"),
    ("preconditions: {id: p}", "need `flows`, `where` or both"),
    ("preconditions: {id: p, where: [{id: w, filters: [{field: STATE, type: IN}]}]}",
     "needs `values`"),
    ("preconditions: {id: p, where: [{id: w, filters: [{field: FLOW_ID, type: REGEX, "
     "value: '('}]}]}", "not a regular expression"),
    ("stopAfter: [FAILED]\n    conditions: [{type: io.kestra.plugin.core.condition.Expression, "
     "expression: 'true'}]", "stopAfter on Flow triggers is not supported yet"),
])
def test_bad_flow_triggers_are_rejected_with_the_reason(trigger: str, message: str) -> None:
    source = _downstream("  - id: t\n    type: io.kestra.plugin.core.trigger.Flow\n"
                         f"    {trigger}\n")
    with pytest.raises(FlowValidationError) as caught:
        parse_flow(source, "flows/down.yaml")
    assert message in str(caught.value)
    assert "flows/down.yaml" in str(caught.value)


def test_a_flow_trigger_disabled_at_run_time_lets_ends_pass(
        tmp_path: Path, store: RedisStore, app: Celery) -> None:
    (tmp_path / "down.yaml").write_text(_downstream("""  - id: t
    type: io.kestra.plugin.core.trigger.Flow
    conditions:
      - type: io.kestra.plugin.core.condition.ExecutionStatus
        in: [SUCCESS]
"""))
    replica = Replica(tmp_path, store, app, "r1")
    replica.loop.states.set_disabled(["pipeline/down/t"], True)  # as the UI does
    _end(store, "ingest", State.SUCCESS)
    replica.drain()
    assert _triggered(store) == []
    replica.loop.states.set_disabled(["pipeline/down/t"], False)
    enabled = _end(store, "ingest", State.SUCCESS)
    replica.drain()
    assert [e.trigger["executionId"] for e in _triggered(store)] == [enabled]


def _window(**fields: object) -> TimeWindow:
    return TimeWindow.model_validate(fields)


def test_time_windows_follow_kestras_four_types() -> None:
    at = datetime(2026, 3, 1, 13, 30, tzinfo=UTC)
    hour = timedelta(hours=1)
    day = datetime(2026, 3, 1, tzinfo=UTC)
    assert _window().bounds(at) == (day, day + 24 * hour)  # the default: one day
    six = _window(window="PT6H", windowAdvance="PT6H")  # 06-12, 12-18, 18-00, 00-06
    assert six.bounds(at) == (day + 12 * hour, day + 18 * hour)
    assert six.bounds(day + 3 * hour) == (day, day + 6 * hour)
    assert _window(type="SLIDING_WINDOW", window="PT1H").bounds(at) == (at - hour, at)
    deadline = _window(type="DAILY_TIME_DEADLINE", deadline="09:00:00")
    assert deadline.bounds(day + 8 * hour) == (day, day + 9 * hour)
    assert deadline.bounds(at) is None  # after the deadline: counts for nothing
    daily = _window(type="DAILY_TIME_WINDOW", startTime="13:00:00", endTime="14:00:00")
    assert daily.bounds(at) == (day + 13 * hour, day + 14 * hour)
    assert daily.bounds(day + 15 * hour) is None


class Clock:
    """When each upstream execution ended, as the test says."""

    def __init__(self) -> None:
        self.now = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)

    def __call__(self, execution: object) -> datetime:
        return self.now


def test_preconditions_met_in_different_windows_do_not_fire(
        tmp_path: Path, store: RedisStore, app: Celery) -> None:
    (tmp_path / "down.yaml").write_text(_downstream("""  - id: both
    type: io.kestra.plugin.core.trigger.Flow
    preconditions:
      id: both
      timeWindow:
        type: SLIDING_WINDOW
        window: PT1H
      flows:
        - {namespace: pipeline, flowId: ingest_a}
        - {namespace: pipeline, flowId: ingest_b}
"""))
    replica = Replica(tmp_path, store, app, "r1")
    clock = Clock()
    replica.loop.clock = clock
    _end(store, "ingest_a", State.SUCCESS)
    replica.drain()
    clock.now += timedelta(minutes=61)  # A is out of the last hour when B ends
    _end(store, "ingest_b", State.SUCCESS)
    replica.drain()
    assert _triggered(store) == []
    clock.now += timedelta(minutes=30)
    last = _end(store, "ingest_a", State.SUCCESS)  # B 30 min ago, A now: both in the hour
    replica.drain()
    assert [e.trigger["executionId"] for e in _triggered(store)] == [last]


def test_an_end_after_the_daily_deadline_counts_for_nothing(
        tmp_path: Path, store: RedisStore, app: Celery) -> None:
    (tmp_path / "down.yaml").write_text(_downstream("""  - id: by_nine
    type: io.kestra.plugin.core.trigger.Flow
    preconditions:
      id: by_nine
      timeWindow:
        type: DAILY_TIME_DEADLINE
        deadline: "09:00:00"
      flows:
        - {namespace: pipeline, flowId: ingest, states: [SUCCESS]}
"""))
    replica = Replica(tmp_path, store, app, "r1")
    clock = Clock()
    replica.loop.clock = clock
    clock.now = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
    _end(store, "ingest", State.SUCCESS)
    replica.drain()
    assert _triggered(store) == []
    clock.now = datetime(2026, 3, 2, 8, 59, tzinfo=UTC)
    in_time = _end(store, "ingest", State.SUCCESS)
    replica.drain()
    assert [e.trigger["executionId"] for e in _triggered(store)] == [in_time]


def test_daily_time_window_and_fixed_duration_windows(
        tmp_path: Path, store: RedisStore, app: Celery) -> None:
    (tmp_path / "down.yaml").write_text(_downstream("""  - id: morning
    type: io.kestra.plugin.core.trigger.Flow
    preconditions:
      id: morning
      timeWindow: {type: DAILY_TIME_WINDOW, startTime: "06:00:00", endTime: "09:00:00"}
      flows: [{namespace: pipeline, flowId: ingest}]
  - id: quarter
    type: io.kestra.plugin.core.trigger.Flow
    preconditions:
      id: quarter
      timeWindow: {type: DURATION_WINDOW, window: PT6H, windowAdvance: PT6H}
      flows: [{namespace: pipeline, flowId: ingest}, {namespace: pipeline, flowId: other}]
"""))
    replica = Replica(tmp_path, store, app, "r1")
    clock = Clock()
    replica.loop.clock = clock
    clock.now = datetime(2026, 3, 1, 11, 0, tzinfo=UTC)  # morning: no; 06-12 window
    _end(store, "ingest", State.SUCCESS)
    replica.drain()
    clock.now = datetime(2026, 3, 1, 12, 30, tzinfo=UTC)  # 12-18: ingest is not in it
    _end(store, "other", State.SUCCESS)
    replica.drain()
    assert _triggered(store) == []
    clock.now = datetime(2026, 3, 1, 7, 0, tzinfo=UTC)  # morning: yes; quarter: 06-12 lacks other
    morning = _end(store, "ingest", State.SUCCESS)
    replica.drain()
    assert [e.id for e in _triggered(store)] == [
        triggered_execution_id(morning, "pipeline/down/morning")]


def test_embedded_decisions_answer_as_the_redis_script(store: RedisStore) -> None:
    """Embedded mode decides in memory what decide_flow_trigger.lua decides in
    Redis: the same answers for the same ends, once per (end, trigger)."""
    def window(key: str, ended: int, start: int, reset: bool = True) -> Window:
        return Window(key, total=2, reset_on_success=reset, ended_ms=ended, start_ms=start,
                      ttl_seconds=60)

    steps: list[tuple[str, Window | None, list[str]]] = [
        ("e1:t", None, []), ("e1:t", None, []),  # decided once: the same answer
        ("e2:p", window("w", 1000, 0), ["a"]),  # one of two conditions: wait
        ("e3:p", window("w", 2000, 0), ["a"]),  # the same one again
        ("e4:p", window("w", 3000, 0), ["b"]),  # both met: fire, and start over
        ("e5:p", window("w", 4000, 0), ["b"]),
        ("e6:p", window("w", 9000, 5000), ["a"]),  # b was met before the window: stale
        ("e7:k", window("k", 1000, 0, reset=False), ["a", "b"]),
        ("e8:k", window("k", 1500, 0, reset=False), ["a"]),  # kept: fires again
    ]
    redis_decisions = RedisDecisions(store.redis, "test")
    memory_decisions = MemoryDecisions()
    answers = [[d.decide(key, w, met) for key, w, met in steps]
               for d in (redis_decisions, memory_decisions)]
    assert answers[0] == answers[1] == ["fire", "fire", "skip", "skip", "fire", "skip",
                                        "skip", "fire", "fire"]
    for decisions in (redis_decisions, memory_decisions):
        decisions.mark_done("e1:t")
        assert decisions.decide("e1:t", None, []) == "done"
