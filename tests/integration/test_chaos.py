"""Chaos with real processes: 100 executions of a 5-task flow on two prefork
workers and two scheduler replicas, while a worker is killed with -9, Redis
(with AOF) restarts and a scheduler is killed with -9, each at a random
moment. Afterwards every execution has ended and every task's side effect (a
line appended to a file) happened once per successful attempt, with no two
attempts of a task overlapping."""

from __future__ import annotations

import random
import signal
import threading
import time
from collections import defaultdict
from pathlib import Path

import pytest

from harrier.common.celery_app import app, configure_app
from harrier.common.flow import parse_flow
from harrier.common.redis_store import RedisStore
from harrier.common.state import State
from harrier.scheduler.executions import create_execution, start_execution
from tests.fixtures.redis_server import RedisServer
from tests.fixtures.workers import make_cluster

pytestmark = [pytest.mark.slow, pytest.mark.timeout(400)]

EXECUTIONS = 100
TASKS = 5


def chaos_flow(path: Path) -> str:
    def line(event: str, task: str) -> str:
        return (f'echo "{event} {{{{ execution.id }}}} {task} {{{{ taskrun.attemptsCount }}}} '
                f'$(date +%s.%N)" >> {path}')

    tasks = "\n".join(f"""  - id: t{i}
    type: io.kestra.plugin.scripts.shell.Commands
    commands:
      - {line("start", f"t{i}")}
      - sleep 0.2
      - {line("end", f"t{i}")}""" for i in range(TASKS))
    return f"id: chaos\nnamespace: chaos\ntasks:\n{tasks}\n"


def test_chaos_every_execution_ends_and_every_side_effect_happens_once(tmp_path):
    (tmp_path / "redis").mkdir()
    server = RedisServer(tmp_path / "redis", persistent=True)  # AOF, fsync always
    server.start()
    # The default visibility timeout (an hour): recovery must not wait for it.
    cluster = make_cluster(server.url, server.url, tmp_path, visibility_timeout=3600)
    effects = tmp_path / "effects"
    rng = random.Random()
    events: list[str] = []
    try:
        for name in ("w1", "w2"):
            cluster.start_worker(name, concurrency=3)
        for name in ("s1", "s2"):
            cluster.start_scheduler(name)
        configure_app(cluster.settings)
        store = RedisStore.from_url(server.url, patience=60)
        flow = parse_flow(chaos_flow(effects), "chaos.yaml")
        started = time.monotonic()

        def chaos() -> None:
            moments = sorted((rng.uniform(2, 14), what) for what in
                             ("kill worker", "restart redis", "kill scheduler"))
            for moment, what in moments:
                time.sleep(max(0.0, moment - (time.monotonic() - started)))
                events.append(f"{time.monotonic() - started:.1f} s: {what}")
                if what == "kill worker":
                    victim = rng.choice(cluster.workers)
                    cluster.kill(victim)  # kill -9 of its process group
                    cluster.workers.remove(victim)
                    cluster.start_worker(victim.name, concurrency=3)
                elif what == "restart redis":
                    server.stop()
                    time.sleep(rng.uniform(0.5, 3))
                    server.start()
                else:
                    victim = rng.choice(cluster.schedulers)
                    cluster.stop_scheduler(victim, signal.SIGKILL)
                    cluster.schedulers.remove(victim)
                    cluster.start_scheduler(victim.name)

        chaos_thread = threading.Thread(target=chaos)
        chaos_thread.start()
        ids = []
        for _ in range(EXECUTIONS):  # over ~10 s, through the chaos
            execution = create_execution(store, flow, {})
            start_execution(app, flow, execution, store=store)
            ids.append(execution.id)
            time.sleep(0.1)
        chaos_thread.join(120)
        deadline = time.monotonic() + 240
        pending = list(ids)
        while pending and time.monotonic() < deadline:
            pending = [i for i in pending if not store.execution_state(i).terminated]
            time.sleep(1)
        elapsed = time.monotonic() - started
        print(f"\nchaos: {'; '.join(events)}; all {EXECUTIONS} executions ended after "
              f"{elapsed:.0f} s")
        assert not pending, f"{len(pending)} executions never ended ({events})"

        executions = [store.get_execution(i) for i in ids]
        states = defaultdict(int)
        for execution in executions:
            states[execution.state.current] += 1
        assert states == {State.SUCCESS: EXECUTIONS}, (dict(states), events)

        time.sleep(1)  # an attempt that outlived its worker would still be writing
        lines = defaultdict(list)  # (execution, task) -> (event, attempt, time)
        for line in effects.read_text().splitlines():
            event, execution_id, task_id, attempt, stamp = line.split()
            lines[(execution_id, task_id)].append((event, int(attempt) + 1, float(stamp)))
        lost = 0
        for execution in executions:
            for run in execution.task_runs:
                seen = lines[(execution.id, run.task_id)]
                attempts = [(e, n) for e, n, _ in seen]
                # Each attempt started at most once, and the successful one ran whole.
                starts = [n for e, n in attempts if e == "start"]
                assert len(starts) == len(set(starts)), (execution.id, run.task_id, seen)
                winner = len(run.attempts)
                assert run.attempts[-1].state.current == State.SUCCESS
                assert attempts.count(("start", winner)) == 1
                assert attempts.count(("end", winner)) == 1
                lost += len(run.attempts) - 1
                # No overlap: an attempt's lines all come before the next one starts.
                first_of = {n: t for e, n, t in seen if e == "start"}
                for _event, number, stamp in seen:
                    later = [t for n, t in first_of.items() if n > number]
                    assert all(stamp < t for t in later), (execution.id, run.task_id, seen)
        resumed = sum(1 for i in ids if any("had not moved" in entry.message
                                            for entry in store.read_logs(i)))
        print(f"chaos: {lost} attempt(s) lost to the crashes and run again, {resumed} "
              "execution(s) resumed after a lost message")
    finally:
        cluster.stop_all()
        server.stop()
