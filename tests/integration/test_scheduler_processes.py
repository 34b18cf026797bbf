"""Real `harrier scheduler` processes against a real redis-server: each tick
fires exactly once across three replicas, a restarted scheduler recovers
missed ticks per recoverMissedSchedules, and `harrier backfill` fires past
ticks once. No workers: executions are created in the store and enqueued."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis

from harrier.common.redis_store import RedisStore
from harrier.common.state import parse_iso
from harrier.common.store import ExecutionQuery
from harrier.scheduler.tick_claim import last_fired
from tests.fixtures.redis_server import RedisServer

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(180)


def _flow(flow_id: str, cron: str, recover: str = "ALL") -> str:
    return f"""id: {flow_id}
namespace: sched.test
tasks:
  - id: say
    type: io.kestra.plugin.core.log.Log
    message: "{{{{ trigger.date | date('yyyy-MM-dd') }}}}"
triggers:
  - id: every
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "{cron}"
    withSeconds: true
    recoverMissedSchedules: {recover}
"""


def _harrier(*args: str) -> list[str]:
    return [sys.executable, "-m", "harrier", *args]


class SchedulerProcess:
    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.proc = subprocess.Popen(_harrier("scheduler", "--no-api"), cwd=ROOT, env=env,
                                     stdout=self._log, stderr=subprocess.STDOUT)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while "trigger loop started" not in self.log():
            assert self.proc.poll() is None, f"scheduler exited:\n{self.log()}"
            assert time.monotonic() < deadline, f"scheduler not ready:\n{self.log()}"
            time.sleep(0.05)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


@pytest.fixture
def environment(redis_server: RedisServer, redis_client: redis.Redis,
                tmp_path: Path) -> Iterator[tuple[dict[str, str], Path]]:
    flows = tmp_path / "flows"
    flows.mkdir()
    env = {**os.environ, "HARRIER_BROKER_URL": redis_server.url,
           "HARRIER_FLOWS_DIR": str(flows), "HARRIER_LOG_LEVEL": "INFO",
           "PYTHONPATH": str(ROOT)}
    yield env, flows


@pytest.fixture
def schedulers(tmp_path: Path) -> Iterator[list[SchedulerProcess]]:
    started: list[SchedulerProcess] = []
    yield started
    for process in started:
        process.stop()


def _trigger_dates(store: RedisStore, flow_id: str) -> list[datetime]:
    executions, _ = store.search_executions(ExecutionQuery(namespace="sched.test",
                                                           flow_id=flow_id, limit=10_000))
    return sorted(parse_iso(e.trigger["date"]) for e in executions if e.trigger)


def _sleep_until(moment: datetime) -> None:
    time.sleep(max(0.0, (moment - datetime.now(UTC)).total_seconds()))


def test_three_replicas_fire_every_tick_of_ten_seconds_exactly_once(
        environment: tuple[dict[str, str], Path], schedulers: list[SchedulerProcess],
        redis_server: RedisServer, tmp_path: Path) -> None:
    env, flows = environment
    (flows / "every_second.yaml").write_text(_flow("every_second", "*/1 * * * * *"))
    (flows / "broken.yaml").write_text("id: broken\nnamespace: sched.test\ntasks: 3\n")
    for index in range(3):
        schedulers.append(SchedulerProcess(env, tmp_path / f"scheduler-{index}.log"))
    for process in schedulers:
        process.wait_ready()
    window_start = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=2)
    window = [window_start + timedelta(seconds=i) for i in range(10)]
    _sleep_until(window[-1] + timedelta(seconds=2))
    for process in schedulers:
        assert process.stop() == 0, process.log()

    dates = _trigger_dates(RedisStore.from_url(redis_server.url), "every_second")
    inside = [d for d in dates if window[0] <= d <= window[-1]]
    assert inside == window, f"ticks fired in the window: {inside}"
    assert len(dates) == len(set(dates)), "a tick fired twice"
    logs = [p.log() for p in schedulers]
    assert all("broken.yaml:3:1: tasks: expected a list of tasks" in text for text in logs)
    fired_by = [text.count("fired flow sched.test.every_second") for text in logs]
    assert sum(fired_by) == len(dates)


def test_restarted_scheduler_recovers_missed_ticks_per_policy(
        environment: tuple[dict[str, str], Path], schedulers: list[SchedulerProcess],
        redis_server: RedisServer, tmp_path: Path) -> None:
    env, flows = environment
    policies = {"recover_all": "ALL", "recover_last": "LAST", "recover_none": "NONE"}
    for flow_id, policy in policies.items():
        (flows / f"{flow_id}.yaml").write_text(_flow(flow_id, "*/1 * * * * *", policy))
    first = SchedulerProcess(env, tmp_path / "first.log")
    schedulers.append(first)
    first.wait_ready()
    client = redis_server.client()
    deadline = time.monotonic() + 20
    while any(last_fired(client, f"sched.test/{f}/every") is None for f in policies):
        assert time.monotonic() < deadline, first.log()
        time.sleep(0.1)
    assert first.stop() == 0, first.log()

    # While no scheduler runs, exactly five ticks pass: the cron now names five
    # seconds just ahead (and nothing else for the next ~50 s).
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=2)
    missed = [start + timedelta(seconds=i) for i in range(5)]
    seconds = ",".join(str(t.second) for t in missed)
    for flow_id, policy in policies.items():
        (flows / f"{flow_id}.yaml").write_text(_flow(flow_id, f"{seconds} * * * * *", policy))
    store = RedisStore.from_url(redis_server.url)
    before = {flow_id: set(_trigger_dates(store, flow_id)) for flow_id in policies}
    _sleep_until(missed[-1] + timedelta(seconds=0.5))

    second = SchedulerProcess(env, tmp_path / "second.log")
    schedulers.append(second)
    second.wait_ready()
    deadline = time.monotonic() + 20
    while len(set(_trigger_dates(store, "recover_all")) - before["recover_all"]) < 5:
        assert time.monotonic() < deadline, second.log()
        time.sleep(0.1)
    time.sleep(1.0)  # let LAST and NONE show what they would have fired
    assert second.stop() == 0, second.log()

    recovered = {flow_id: sorted(set(_trigger_dates(store, flow_id)) - before[flow_id])
                 for flow_id in policies}
    assert recovered["recover_all"] == missed
    assert recovered["recover_last"] == [missed[-1]]
    assert recovered["recover_none"] == []


def test_backfill_command_fires_each_past_tick_once(
        environment: tuple[dict[str, str], Path], redis_server: RedisServer) -> None:
    env, flows = environment
    (flows / "daily.yaml").write_text(_flow("daily", "0 0 0 * * *"))
    args = _harrier("backfill", "sched.test", "daily", "--start", "2024-01-01T00:00:00Z",
                    "--end", "2024-01-05T00:00:00Z", "--json")
    first = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True,
                           timeout=60)
    assert first.returncode == 0, first.stderr
    result = json.loads(first.stdout)
    assert [e["tick"] for e in result["executions"]] == [
        f"2024-01-0{day}T00:00:00Z" for day in range(1, 6)]
    again = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["executions"] == []
    assert len(json.loads(again.stdout)["alreadyFired"]) == 5
    store = RedisStore.from_url(redis_server.url)
    assert len(_trigger_dates(store, "daily")) == 5
