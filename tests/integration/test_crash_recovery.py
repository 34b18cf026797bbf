"""Crashes with real processes: a real Redis, prefork `harrier worker`
processes and `harrier scheduler` replicas; workers (or their pool processes)
killed with -9 while a task runs. Each task appends `start`/`end` lines with
its shell's pid and a timestamp to a file, so a test sees every attempt that
ran and whether two ever overlapped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from harrier.common.celery_app import app, configure_app
from harrier.common.errors import ExecutionNotFound
from harrier.common.execution import Execution
from harrier.common.flow import parse_flow
from harrier.common.state import State
from harrier.common.store import ExecutionQuery
from harrier.scheduler.control import kill_execution
from harrier.scheduler.executions import create_execution, start_execution
from harrier.scheduler.tick_claim import PENDING_KEY, claim_owner
from tests.fixtures.redis_server import RedisServer, start_redis_server
from tests.fixtures.workers import Cluster, WorkerProcess, make_cluster
from tests.integration.embedded import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(400)]
# HARRIER_TASK_LOST_AFTER for every cluster here (the default, 15 s, only makes
# the tests wait): three heartbeats missed. Stalls are seen after twice that.
LOST_AFTER = "6"


@pytest.fixture(scope="module")
def crashable(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
              ) -> Iterator[Cluster]:
    """Two prefork workers and two scheduler replicas, with the default
    visibility timeout (an hour): recovery must not wait for it. A task is
    taken for lost after 6 s without a heartbeat (every 2 s), not 15 s."""
    if not redis_server.running:
        redis_server.start()
    redis_server.client().flushall()
    made = make_cluster(redis_server.url, redis_server.url,
                        tmp_path_factory.mktemp("crash"), visibility_timeout=3600,
                        HARRIER_TASK_LOST_AFTER=LOST_AFTER)
    try:
        made.start_worker("w1")
        made.start_worker("w2")
        made.start_scheduler("s1")
        made.start_scheduler("s2")
        yield made
    finally:
        made.stop_all()


@dataclass
class Attempt:
    pid: int
    start: float
    end: float | None


def attempts_in(path: Path) -> list[Attempt]:
    """The attempts the side-effect file shows, in the order they started."""
    found: dict[int, Attempt] = {}
    for line in path.read_text().splitlines():
        event, pid, stamp = line.split()
        if event == "start":
            found[int(pid)] = Attempt(int(pid), float(stamp), None)
        else:
            found[int(pid)].end = float(stamp)
    return sorted(found.values(), key=lambda a: a.start)


def side_effect_flow(flow_id: str, path: Path, seconds: int) -> str:
    """The first attempt sleeps `seconds` (long enough to be killed while it
    runs); an attempt after it sleeps 1 s, as nothing waits for it to be killed."""
    return f"""
id: {flow_id}
namespace: crash
tasks:
  - id: work
    type: io.kestra.plugin.scripts.shell.Commands
    commands:
      - echo "start $$ $(date +%s.%N)" >> {path}
      - if [ "$(grep -c ^start {path})" -gt 1 ]; then sleep 1; else sleep {seconds}; fi
      - echo "end $$ $(date +%s.%N)" >> {path}
"""


def start(cluster: Cluster, text: str) -> Execution:
    configure_app(cluster.settings)  # clusters of this module use different Redis servers
    flow = parse_flow(text, "crash.yaml")
    execution = create_execution(cluster.store, flow, {})
    start_execution(app, flow, execution, store=cluster.store)
    return execution


def running_on(cluster: Cluster, execution: Execution, path: Path) -> WorkerProcess:
    """The worker running the execution's task, once the task has started."""
    wait_for(lambda: path.exists() and path.read_text().strip(), timeout=60)
    run = wait_for(lambda: next((r for r in cluster.store.task_runs(execution.id)
                                 if r.state.current == State.RUNNING and r.attempts), None))
    return next(w for w in cluster.workers if w.hostname == run.attempts[-1].worker_id)


def parent_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("PPid:"):
            return int(line.split()[1])
    raise AssertionError(f"no parent for {pid}")


def pool_process_of(task_pid: int) -> int:
    # the task's shell <- the worker's pool process
    return parent_of(task_pid)


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"


def replace_worker(cluster: Cluster, victim: WorkerProcess) -> None:
    if victim.alive():
        cluster.kill(victim)
    cluster.workers.remove(victim)
    cluster.start_worker(victim.name)


def check_one_lost_attempt_then_success(cluster: Cluster, execution: Execution, path: Path
                                        ) -> list[Attempt]:
    done = cluster.store.wait_terminal(execution.id, 150)
    time.sleep(1)  # an orphan would still be writing
    assert done.state.current == State.SUCCESS, [(r.task_id, r.state.current, r.error)
                                                 for r in done.task_runs]
    [run] = done.task_runs
    assert [a.state.current for a in run.attempts] == [State.FAILED, State.SUCCESS]
    assert run.attempts[0].error == "worker lost while running this attempt"
    attempts = attempts_in(path)
    assert len(attempts) == 2, path.read_text()
    first, second = attempts
    assert first.end is None, "the lost attempt's process kept running after its worker died"
    assert second.end is not None
    assert gone(first.pid)
    return attempts


def test_a_task_whose_worker_is_killed_runs_again_before_the_visibility_timeout(crashable,
                                                                               tmp_path):
    path = tmp_path / "effects"
    execution = start(crashable, side_effect_flow("whole-worker", path, 6))
    victim = running_on(crashable, execution, path)
    killed_at = time.time()
    crashable.kill(victim)  # kill -9 of the worker and its pool processes
    try:
        second = check_one_lost_attempt_then_success(crashable, execution, path)[1]
        print(f"\nkill -9 of the worker -> task started again after "
              f"{second.start - killed_at:.1f} s")
        assert second.start > killed_at
        [run] = crashable.store.task_runs(execution.id)
        assert run.attempts[1].worker_id != victim.hostname
    finally:
        replace_worker(crashable, victim)


def test_killing_a_pool_process_kills_its_task_before_the_rerun(crashable, tmp_path):
    # What the OOM killer does: the pool process dies, the main worker lives on.
    path = tmp_path / "effects"
    execution = start(crashable, side_effect_flow("pool-process", path, 20))
    victim = running_on(crashable, execution, path)
    task_pid = attempts_in(path)[0].pid
    killed_at = time.time()
    os.kill(pool_process_of(task_pid), signal.SIGKILL)
    wait_for(lambda: gone(task_pid), timeout=5)
    try:
        second = check_one_lost_attempt_then_success(crashable, execution, path)[1]
        print(f"\nkill -9 of a pool process -> task started again after "
              f"{second.start - killed_at:.1f} s")
    finally:
        replace_worker(crashable, victim)


def test_killing_the_main_worker_process_kills_its_task_before_the_rerun(crashable, tmp_path):
    path = tmp_path / "effects"
    execution = start(crashable, side_effect_flow("main-process", path, 20))
    victim = running_on(crashable, execution, path)
    task_pid = attempts_in(path)[0].pid
    killed_at = time.time()
    os.kill(victim.process.pid, signal.SIGKILL)  # the pool processes are left orphaned
    wait_for(lambda: gone(task_pid), timeout=5)
    try:
        second = check_one_lost_attempt_then_success(crashable, execution, path)[1]
        print(f"\nkill -9 of the main worker process -> task started again after "
              f"{second.start - killed_at:.1f} s")
        [run] = crashable.store.task_runs(execution.id)
        crashed = crashable.settings.work_root / f"{execution.id}-{run.id}-1"
        assert crashed.is_dir()  # nobody was left to remove it
    finally:
        replace_worker(crashable, victim)
    assert not crashed.exists(), "the next worker start removes a crashed attempt's directory"


def test_kill_ends_an_execution_whose_worker_died(crashable, tmp_path):
    path = tmp_path / "effects"
    execution = start(crashable, side_effect_flow("killed-orphan", path, 30))
    victim = running_on(crashable, execution, path)
    crashable.kill(victim)
    try:
        # Its heartbeat is still fresh: KILLING, until a scheduler sees it stopped.
        kill_execution(crashable.store, execution.id)
        done = crashable.store.wait_terminal(execution.id, 90)
        assert done.state.current == State.KILLED
        assert [(r.task_id, r.state.current) for r in done.task_runs] == [
            ("work", State.KILLED)]
        assert len(attempts_in(path)) == 1  # not run again
        crashable.store.delete_execution(execution.id)  # an ended execution can be deleted
        with pytest.raises(ExecutionNotFound):
            crashable.store.get_execution(execution.id)
    finally:
        replace_worker(crashable, victim)


def test_kill_of_a_long_orphaned_run_ends_it_at_once(tmp_path):
    # A Redis of its own, and no scheduler: nobody else would ever end the run.
    server = start_redis_server(tmp_path)
    cluster = make_cluster(server.url, server.url, tmp_path)
    try:
        cluster.start_worker("lonely")
        path = tmp_path / "effects"
        execution = start(cluster, side_effect_flow("orphan", path, 60))
        victim = running_on(cluster, execution, path)
        cluster.kill(victim)
        [run] = cluster.store.task_runs(execution.id)
        wait_for(lambda: time.time() - cluster.store.last_beat(execution.id, run.id)
                 .timestamp() > 11, timeout=30, every=0.5)
        killed = kill_execution(cluster.store, execution.id)
        assert killed.state.current == State.KILLED
        [run] = killed.task_runs
        assert run.state.current == State.KILLED
        assert run.attempts[-1].error == "worker lost while running this attempt"
    finally:
        cluster.stop_all()
        server.stop()


# Runs in a process of its own and dies (kill -9) right after winning a tick's
# claim, before the execution exists: the fault hook `firing.after_claim` is
# the only fake here, to hit that moment every time.
_DOOMED_SCHEDULER = """
import os, signal, sys
from datetime import datetime
from harrier.common.celery_app import configure_app
from harrier.common.flow import parse_flow
from harrier.common.redis_store import RedisStore
from harrier.common.settings import Settings
from harrier.common.triggers import ScheduleTrigger
from harrier.scheduler import firing
from harrier.scheduler.flow_catalog import ScheduledTrigger

settings = Settings.from_env()
store = RedisStore.from_settings(settings)
context = firing.FireContext(store, configure_app(settings), store.redis, replica="doomed")
flow = parse_flow(open(sys.argv[1]).read(), sys.argv[1])
[trigger] = flow.triggers_of(ScheduleTrigger)
firing.after_claim = lambda fire: os.kill(os.getpid(), signal.SIGKILL)
firing.fire_tick(context, ScheduledTrigger(flow, trigger), datetime.fromisoformat(sys.argv[2]))
"""


def test_a_tick_claimed_by_a_scheduler_that_dies_still_fires_once(crashable, tmp_path):
    path = tmp_path / "effects"
    source = f"""id: doomed-tick
namespace: crash
tasks:
  - id: say
    type: io.kestra.plugin.scripts.shell.Commands
    commands: ["echo fired >> {path}"]
triggers:
  - id: yearly
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "0 0 1 1 *"
    recoverMissedSchedules: NONE
"""
    flow_file = tmp_path / "doomed.yaml"
    flow_file.write_text(source)
    crashable.store.put_flow("crash", "doomed-tick", source)  # the replicas arm it
    doomed = subprocess.run([sys.executable, "-c", _DOOMED_SCHEDULER, str(flow_file),
                             "2024-01-01T00:00:00+00:00"], env=crashable.env,
                            capture_output=True, timeout=60)
    assert doomed.returncode == -signal.SIGKILL, doomed.stderr.decode()[-2000:]
    query = ExecutionQuery(namespace="crash", flow_id="doomed-tick")
    redis = crashable.store.redis
    tick = datetime(2024, 1, 1, tzinfo=UTC)
    assert claim_owner(redis, "crash/doomed-tick/yearly", tick) == "doomed"
    assert crashable.store.search_executions(query)[1] == 0  # it died before creating it

    [execution] = wait_for(lambda: crashable.store.search_executions(query)[0], timeout=90)
    done = crashable.store.wait_terminal(execution.id, 60)
    assert done.state.current == State.SUCCESS
    assert done.trigger["date"] == "2024-01-01T00:00:00Z"
    assert redis.hlen(PENDING_KEY) == 0
    time.sleep(6)  # another sweep of both replicas: still one execution, one run
    assert crashable.store.search_executions(query)[1] == 1
    assert path.read_text() == "fired\n"


def test_an_execution_whose_next_message_was_lost_is_resumed(tmp_path):
    # Deleting a queued message from Redis stands in for one a worker had taken
    # and died with before starting it (a fault the real crash hits only by luck).
    server = start_redis_server(tmp_path)
    cluster = make_cluster(server.url, server.url, tmp_path, HARRIER_TASK_LOST_AFTER=LOST_AFTER)
    try:
        configure_app(cluster.settings)
        path = tmp_path / "effects"
        never_started = start(cluster, side_effect_flow("lost-first", path, 0))
        half_way = start(cluster, f"""
id: lost-second
namespace: crash
tasks:
  - id: first
    type: io.kestra.plugin.scripts.shell.Commands
    commands: ["echo first >> {path}"]
  - id: second
    type: io.kestra.plugin.scripts.shell.Commands
    workerGroup: {{key: other}}
    commands: ["echo second >> {path}"]
""")
        redis = cluster.store.redis
        wait_for(lambda: redis.llen("default") == 2)
        redis.rpop("default")  # the oldest, the first flow's only message: lost
        worker = cluster.start_worker("w", queues="default")
        wait_for(lambda: redis.llen("other") == 1, timeout=60)
        redis.delete("other")  # the second flow's next message: lost after `first` ended
        cluster.kill(worker)
        cluster.workers.remove(worker)
        cluster.start_worker("w", queues="default,other")
        cluster.start_scheduler("s")
        for execution in (never_started, half_way):
            done = cluster.store.wait_terminal(execution.id, 120)
            assert done.state.current == State.SUCCESS, (execution.id, done.state.current)
            assert any("had not moved" in entry.message
                       for entry in cluster.store.read_logs(execution.id))
        assert sorted(line.split()[0] for line in path.read_text().splitlines()) == [
            "end", "first", "second", "start"]  # each task ran once
    finally:
        cluster.stop_all()
        server.stop()


def test_a_retry_held_by_a_worker_that_dies_still_happens(tmp_path):
    # A retry waits in a delayed message its worker holds; kill -9 loses it
    # (until the broker's visibility timeout, an hour).
    server = start_redis_server(tmp_path)
    cluster = make_cluster(server.url, server.url, tmp_path, HARRIER_TASK_LOST_AFTER=LOST_AFTER)
    try:
        worker = cluster.start_worker("holder", concurrency=1)
        cluster.start_scheduler("s")
        flag = tmp_path / "failed-once"
        execution = start(cluster, f"""
id: retry-lost
namespace: crash
tasks:
  - id: flaky
    type: io.kestra.plugin.scripts.shell.Commands
    retry: {{type: constant, interval: PT5S, maxAttempts: 3}}
    commands: ["if [ ! -f {flag} ]; then touch {flag}; exit 1; fi"]
""")
        wait_for(lambda: any(r.state.current == State.RETRYING
                             for r in cluster.store.task_runs(execution.id)), timeout=60)
        cluster.kill(worker)
        cluster.workers.remove(worker)
        cluster.start_worker("holder", concurrency=1)
        done = cluster.store.wait_terminal(execution.id, 120)
        assert done.state.current == State.SUCCESS
        [run] = done.task_runs
        assert [a.state.current for a in run.attempts] == [State.FAILED, State.SUCCESS]
    finally:
        cluster.stop_all()
        server.stop()


def test_a_worker_stopped_with_sigterm_leaves_no_task_running(crashable, tmp_path):
    # What `docker stop`, Kubernetes and the test fixtures do: SIGTERM to the
    # worker's process group, pool processes included.
    path = tmp_path / "effects"
    execution = start(crashable, side_effect_flow("sigterm", path, 30))
    victim = running_on(crashable, execution, path)
    task_pid = attempts_in(path)[0].pid
    stopped_at = time.monotonic()
    try:
        crashable.kill(victim, signal.SIGTERM)
        wait_for(lambda: gone(task_pid), timeout=20)
        print(f"\nSIGTERM to the worker -> its task gone after "
              f"{time.monotonic() - stopped_at:.1f} s")
    finally:
        replace_worker(crashable, victim)
    assert attempts_in(path)[0].end is None  # stopped, not left to finish its 30 s
