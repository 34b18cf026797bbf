"""The trigger loop driven step by step with its own clock: due ticks fire
once across loops sharing Redis, missed ticks are recovered per policy,
declared backfills run once, removed flows stop firing."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis
from celery import Celery

from harrier.common.celery_app import configure_app
from harrier.common.memory_store import MemoryStore
from harrier.common.settings import Settings
from harrier.common.state import parse_iso
from harrier.common.store import ExecutionQuery
from harrier.common.templating import render
from harrier.scheduler.firing import FireContext
from harrier.scheduler.flow_catalog import FlowCatalog, MemoryOrigins
from harrier.scheduler.triggers import TriggerLoop

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def _flow(flow_id: str, cron: str = "* * * * * *", *, recover: str = "ALL",
          extra: str = "") -> str:
    return f"""id: {flow_id}
namespace: loop.test
inputs:
  - id: who
    type: STRING
    defaults: nobody
tasks:
  - id: say
    type: io.kestra.plugin.core.log.Log
    message: hi
triggers:
  - id: sched
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "{cron}"
    withSeconds: true
    recoverMissedSchedules: {recover}
    inputs:
      who: scheduler
{extra}"""


@pytest.fixture
def app() -> Iterator[Celery]:
    # The in-memory transport with no worker: enqueued canvases are purged after.
    celery_app = configure_app(Settings())
    yield celery_app
    with celery_app.connection_for_write() as connection:
        connection.default_channel.queue_purge("default")


class Scheduler:
    """One replica: its own catalog and loop over a shared store and Redis."""

    def __init__(self, flows: Path, store: MemoryStore, client: redis.Redis, app: Celery,
                 **options: int) -> None:
        self.catalog = FlowCatalog(flows, store, origins=MemoryOrigins())
        self.loop = TriggerLoop(self.catalog, FireContext(store, app, client, "test"),
                                fire_threads=1, **options)

    def step(self, at: datetime) -> list[datetime]:
        self.catalog.refresh()
        return sorted(f.tick for f in self.loop.step(at) if f.execution_id)


def _seconds(*offsets: int) -> list[datetime]:
    return [T0 + timedelta(seconds=s) for s in offsets]


def _dates(store: MemoryStore, flow_id: str) -> list[datetime]:
    executions, _ = store.search_executions(ExecutionQuery(flow_id=flow_id, limit=10_000))
    return sorted(parse_iso(e.trigger["date"]) for e in executions if e.trigger)


def test_two_replicas_fire_each_due_tick_once(tmp_path: Path, redis_client: redis.Redis,
                                              app: Celery) -> None:
    (tmp_path / "f.yaml").write_text(_flow("every"))
    store = MemoryStore()
    one, two = (Scheduler(tmp_path, store, redis_client, app) for _ in range(2))
    assert one.step(T0) == two.step(T0) == []  # armed: a new trigger starts from now
    fired_one = one.step(T0 + timedelta(seconds=3))
    fired_two = two.step(T0 + timedelta(seconds=3))
    assert fired_one == _seconds(1, 2, 3) and fired_two == []
    assert two.step(T0 + timedelta(seconds=4)) == _seconds(4)
    assert one.step(T0 + timedelta(seconds=4)) == []
    assert _dates(store, "every") == _seconds(1, 2, 3, 4)


def test_executions_carry_the_trigger_variables_and_inputs(
        tmp_path: Path, redis_client: redis.Redis, app: Celery) -> None:
    (tmp_path / "f.yaml").write_text(_flow("vars", "0 */5 * * * *"))
    store = MemoryStore()
    scheduler = Scheduler(tmp_path, store, redis_client, app)
    scheduler.step(T0)
    scheduler.step(T0 + timedelta(minutes=5))
    (execution,) = store.search_executions(ExecutionQuery(flow_id="vars"))[0]
    assert execution.trigger == {"type": "io.kestra.plugin.core.trigger.Schedule",
                                 "date": "2026-03-01T12:05:00Z",
                                 "next": "2026-03-01T12:10:00Z",
                                 "previous": "2026-03-01T12:00:00Z"}
    assert execution.inputs == {"who": "scheduler"}
    assert render("{{ trigger.date | date('yyyy-MM-dd') }}", {"trigger": execution.trigger},
                  field="t") == "2026-03-01"


@pytest.mark.parametrize(("policy", "expected"), [
    ("ALL", [4, 5, 6, 7, 8, 9, 10]), ("LAST", [10]), ("NONE", [])])
def test_a_restarted_scheduler_recovers_missed_ticks_per_policy(
        tmp_path: Path, redis_client: redis.Redis, app: Celery, policy: str,
        expected: list[int]) -> None:
    (tmp_path / "f.yaml").write_text(_flow("rec", recover=policy))
    store = MemoryStore()
    first = Scheduler(tmp_path, store, redis_client, app)
    first.step(T0)
    assert first.step(T0 + timedelta(seconds=3)) == _seconds(1, 2, 3)
    # Down from 3 s to 10 s, then a new process starts.
    restarted = Scheduler(tmp_path, store, redis_client, app)
    assert restarted.step(T0 + timedelta(seconds=10)) == _seconds(*expected)
    assert restarted.step(T0 + timedelta(seconds=11)) == _seconds(11)


def test_recovering_more_than_the_limit_fires_only_the_latest_ticks(
        tmp_path: Path, redis_client: redis.Redis, app: Celery) -> None:
    (tmp_path / "f.yaml").write_text(_flow("capped"))
    store = MemoryStore()
    first = Scheduler(tmp_path, store, redis_client, app)
    first.step(T0)
    first.step(T0 + timedelta(seconds=1))
    restarted = Scheduler(tmp_path, store, redis_client, app, recover_limit=5)
    assert restarted.step(T0 + timedelta(seconds=100)) == _seconds(96, 97, 98, 99, 100)


def test_a_removed_flow_stops_firing(tmp_path: Path, redis_client: redis.Redis,
                                     app: Celery) -> None:
    (tmp_path / "f.yaml").write_text(_flow("removed"))
    scheduler = Scheduler(tmp_path, MemoryStore(), redis_client, app)
    scheduler.step(T0)
    assert scheduler.step(T0 + timedelta(seconds=1)) == _seconds(1)
    (tmp_path / "f.yaml").unlink()
    assert scheduler.step(T0 + timedelta(seconds=5)) == []
    assert len(scheduler.loop) == 0


def test_a_changed_cron_takes_effect_without_a_restart(
        tmp_path: Path, redis_client: redis.Redis, app: Celery) -> None:
    path = tmp_path / "f.yaml"
    path.write_text(_flow("changed", "0 0 * * * *"))
    scheduler = Scheduler(tmp_path, MemoryStore(), redis_client, app)
    scheduler.step(T0)
    path.write_text(_flow("changed", "*/10 * * * * *"))
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    scheduler.step(T0 + timedelta(seconds=1))
    assert scheduler.step(T0 + timedelta(seconds=20)) == _seconds(10, 20)


def test_a_declared_backfill_fires_each_tick_of_its_range_once(
        tmp_path: Path, redis_client: redis.Redis, app: Celery) -> None:
    backfill = ("    backfill:\n      start: 2026-03-01T00:00:00Z\n"
                "      end: 2026-03-01T03:00:00Z\n      inputs:\n        who: backfill\n"
                "      labels: {origin: backfill}\n")
    (tmp_path / "f.yaml").write_text(_flow("filled", "0 0 * * * *", extra=backfill))
    store = MemoryStore()
    one, two = (Scheduler(tmp_path, store, redis_client, app, backfill_batch=2)
                for _ in range(2))
    for at in (T0, T0 + timedelta(seconds=1), T0 + timedelta(seconds=2)):
        one.step(at)
        two.step(at)
    hours = [datetime(2026, 3, 1, h, tzinfo=UTC) for h in range(4)]
    assert _dates(store, "filled") == hours
    executions, _ = store.search_executions(ExecutionQuery(flow_id="filled"))
    assert {e.inputs["who"] for e in executions} == {"backfill"}
    assert {e.labels["origin"] for e in executions} == {"backfill"}
    # Finished: a later replica does not walk the range again.
    later = Scheduler(tmp_path, store, redis_client, app)
    assert later.step(T0 + timedelta(seconds=3)) == []
    assert later.loop._backfills == {}


def test_a_trigger_disabled_at_run_time_lets_its_ticks_pass_and_resumes_when_enabled(
        tmp_path: Path, redis_client: redis.Redis, app: Celery) -> None:
    from harrier.scheduler.trigger_state import RedisTriggerStates

    (tmp_path / "f.yaml").write_text(_flow("toggled"))
    store = MemoryStore()
    states = RedisTriggerStates(redis_client)
    scheduler = Scheduler(tmp_path, store, redis_client, app)
    scheduler.step(T0)
    assert scheduler.step(T0 + timedelta(seconds=1)) == _seconds(1)
    states.set_disabled(["loop.test/toggled/sched"], True)
    assert scheduler.step(T0 + timedelta(seconds=3)) == []
    states.set_disabled(["loop.test/toggled/sched"], False)
    assert scheduler.step(T0 + timedelta(seconds=4)) == _seconds(4)
    # The ticks it let pass are not "missed": a restarted scheduler does not replay them.
    restarted = Scheduler(tmp_path, store, redis_client, app)
    assert restarted.step(T0 + timedelta(seconds=5)) == _seconds(5)
    assert _dates(store, "toggled") == _seconds(1, 4, 5)


SUNDAY_SIX_HOURLY = "0 0 */6 * * *"  # T0 is Sunday 2026-03-01 12:00 UTC


@pytest.mark.parametrize(("conditions", "hours"), [
    ("- {type: io.kestra.plugin.core.condition.DayWeek, dayOfWeek: MONDAY}", [24, 30]),
    ("- type: io.kestra.plugin.core.condition.Not\n"
     "        conditions: [{type: io.kestra.plugin.core.condition.Weekend}]", [24, 30]),
    ("- {type: io.kestra.plugin.core.condition.Weekend}", [18]),
    ("- {type: io.kestra.plugin.core.condition.Expression,"
     " expression: \"{{ trigger.date | date('HH') == '06' }}\"}", [30]),
    ("- type: io.kestra.plugin.core.condition.Or\n        conditions:\n"
     "          - {type: io.kestra.plugin.core.condition.TimeBetween, before: '01:00:00Z'}\n"
     "          - {type: io.kestra.plugin.core.condition.DateTimeBetween,"
     " after: '2026-03-02T06:00:00Z'}", [24, 30]),
], ids=["DayWeek", "Not-Weekend", "Weekend", "Expression", "Or-TimeBetween-DateTimeBetween"])
def test_a_schedule_whose_conditions_are_false_does_not_fire(
        tmp_path: Path, redis_client: redis.Redis, app: Celery, conditions: str,
        hours: list[int]) -> None:
    extra = f"    conditions:\n      {conditions}\n"
    (tmp_path / "f.yaml").write_text(_flow("cond", SUNDAY_SIX_HOURLY, extra=extra))
    store = MemoryStore()
    scheduler = Scheduler(tmp_path, store, redis_client, app)
    scheduler.step(T0)
    scheduler.step(T0 + timedelta(hours=19))  # Sunday 18:00 and Monday 00:00, 06:00
    assert _dates(store, "cond") == [T0 + timedelta(hours=h - 12) for h in hours]


def test_when_on_a_trigger_is_a_condition(tmp_path: Path, redis_client: redis.Redis,
                                          app: Celery) -> None:
    extra = "    when: \"{{ trigger.date | date('ss') | number % 2 == 0 }}\"\n"
    (tmp_path / "f.yaml").write_text(_flow("when", extra=extra))
    store = MemoryStore()
    scheduler = Scheduler(tmp_path, store, redis_client, app)
    scheduler.step(T0)
    assert scheduler.step(T0 + timedelta(seconds=5)) == _seconds(2, 4)


def test_late_maximum_delay_skips_ticks_fired_too_late(tmp_path: Path,
                                                       redis_client: redis.Redis,
                                                       app: Celery) -> None:
    (tmp_path / "f.yaml").write_text(_flow("late", extra="    lateMaximumDelay: PT3S\n"))
    store = MemoryStore()
    scheduler = Scheduler(tmp_path, store, redis_client, app)
    scheduler.step(T0)
    assert scheduler.step(T0 + timedelta(seconds=10)) == _seconds(7, 8, 9, 10)


def test_stop_after_disables_the_trigger_once_its_execution_ends_so(
        tmp_path: Path, redis_client: redis.Redis, app: Celery) -> None:
    from harrier.common.state import State
    from harrier.scheduler.trigger_state import RedisTriggerStates

    (tmp_path / "f.yaml").write_text(_flow("stopping", extra="    stopAfter: [FAILED]\n"))
    store = MemoryStore()
    scheduler = Scheduler(tmp_path, store, redis_client, app)
    scheduler.step(T0)
    assert scheduler.step(T0 + timedelta(seconds=1)) == _seconds(1)
    [first], _ = store.search_executions(ExecutionQuery(flow_id="stopping"))
    assert scheduler.step(T0 + timedelta(seconds=2)) == _seconds(2)  # still running: fires
    [second] = [e for e in store.search_executions(ExecutionQuery(flow_id="stopping"))[0]
                if e.id != first.id]
    store.change_execution_state(second.id, State.RUNNING)
    store.change_execution_state(second.id, State.FAILED)
    assert scheduler.step(T0 + timedelta(seconds=5)) == []
    assert "loop.test/stopping/sched" in RedisTriggerStates(redis_client).disabled_keys()
