"""Flower (PyPI `flower`) pointed at Harrier's broker, with a real worker
started with `--events`: its API lists every Celery task under a name a person
can read (namespace.flow.task) with the execution and task ids as arguments."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from harrier.common.dispatch import FlowRef, advance_message, publish
from harrier.common.flow import parse_flow
from harrier.common.state import State
from harrier.scheduler.executions import create_execution, start_execution
from tests.fixtures.redis_server import RedisServer, free_port
from tests.fixtures.workers import Cluster, make_cluster
from tests.integration.embedded import wait_for

FLOW = """
id: nightly_ingest
namespace: prod.etl
tasks:
  - id: extract
    type: io.kestra.plugin.core.debug.Return
    format: rows
  - id: load
    type: io.kestra.plugin.core.log.Log
    message: "{{ outputs.extract.value }}"
"""


@pytest.fixture(scope="module")
def flower(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[tuple[Cluster, str]]:
    redis_server.client().flushall()
    workdir = tmp_path_factory.mktemp("flower")
    cluster = make_cluster(redis_server.url, redis_server.url, workdir)
    port = free_port()
    log = (workdir / "flower.log").open("wb")
    # Flower 2 serves its API only with authentication unless told otherwise.
    env = {**cluster.env, "FLOWER_UNAUTHENTICATED_API": "true"}
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "--broker", redis_server.url, "flower",
         f"--port={port}", "--address=127.0.0.1"],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        cluster.start_worker("fw", concurrency=1, args=("--events",))

        def up() -> bool:
            assert process.poll() is None, (workdir / "flower.log").read_text()
            try:
                return httpx.get(f"{url}/healthcheck", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(up, timeout=60, every=0.2)
        yield cluster, url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(20)
        log.close()
        cluster.stop_all()


def test_flower_shows_readable_task_names_and_ids(flower):
    cluster, url = flower
    from harrier.common.celery_app import app

    flow = parse_flow(FLOW, "flows/nightly.yaml")
    execution = create_execution(cluster.store, flow, {})
    start_execution(app, flow, execution, store=cluster.store)
    assert cluster.store.wait_terminal(execution.id, 60).state.current == State.SUCCESS

    def both_succeeded() -> dict[str, Any] | None:
        tasks = httpx.get(f"{url}/api/tasks", timeout=10).json()
        mine = {t["name"]: t for t in tasks.values() if execution.id in str(t.get("args"))}
        done = all(mine.get(f"prod.etl.nightly_ingest.{task}", {}).get("state") == "SUCCESS"
                   for task in ("extract", "load"))
        return mine if done else None

    # Flower has seen the worker's events (sent because of --events).
    tasks = wait_for(both_succeeded, timeout=60, every=0.5)
    extract = tasks["prod.etl.nightly_ingest.extract"]
    assert extract["args"] == repr((execution.id, "extract"))
    assert "prod.etl" in extract["kwargs"] and "nightly_ingest" in extract["kwargs"]
    assert extract["worker"] == "fw@harrier-test"
    # Harrier turns Celery's remote control off, so /api/workers (an inspect
    # broadcast) is empty; the workers page, built from events, lists it.
    assert "fw@harrier-test" in httpx.get(f"{url}/workers", timeout=10).text


def test_without_events_flower_sees_no_tasks_from_that_worker(flower, redis_server):
    cluster, url = flower
    cluster.start_worker("quiet", concurrency=1, queues="quiet")
    from harrier.common.celery_app import app

    flow = parse_flow(FLOW.replace("id: load", "id: load\n    workerGroup: {key: quiet}")
                      .replace("nightly_ingest", "quiet_flow"), "flows/quiet.yaml")
    execution = create_execution(cluster.store, flow, {})
    start_execution(app, flow, execution, store=cluster.store)
    assert cluster.store.wait_terminal(execution.id, 60).state.current == State.SUCCESS
    # The event of `extract` (run by the worker with --events) arrives; `load`,
    # run by the quiet worker, never does.
    wait_for(lambda: any(t["name"] == "prod.etl.quiet_flow.extract" and
                         t.get("state") == "SUCCESS" for t in
                         httpx.get(f"{url}/api/tasks", timeout=10).json().values()),
             timeout=60, every=0.5)
    names = {t["name"] for t in httpx.get(f"{url}/api/tasks", timeout=10).json().values()}
    assert "prod.etl.quiet_flow.load" not in names


PAUSED = """
id: approval
namespace: prod.etl
tasks:
  - id: wait
    type: io.kestra.plugin.core.flow.Pause
  - id: after
    type: io.kestra.plugin.core.debug.Return
    format: "{{ outputs.wait.token }}"
"""


def test_flower_shows_a_completed_runs_outputs_by_size_only(flower):
    """A `complete_task` message carries the outputs of the run it ends (which
    may hold secrets): the worker uses them, Flower shows how many there are."""
    cluster, url = flower
    from harrier.common.celery_app import app

    flow = parse_flow(PAUSED, "flows/approval.yaml")
    execution = create_execution(cluster.store, flow, {})
    start_execution(app, flow, execution, store=cluster.store)
    wait_for(lambda: cluster.store.execution_state(execution.id) == State.PAUSED,
             timeout=60, every=0.1)
    run = cluster.store.find_task_run(execution.id, "wait")
    assert run is not None
    assert cluster.store.change_execution_state(execution.id, State.RUNNING,
                                                only_from=(State.PAUSED,))
    secret = "s3cr3t-t0ken"
    publish([advance_message(FlowRef("prod.etl", "approval", execution.flow_revision),
                             execution.id, "complete_task", task_id=run.id,
                             state=State.SUCCESS.value, outputs={"token": secret})])
    done = cluster.store.wait_terminal(execution.id, 60)
    assert done.state.current == State.SUCCESS
    after = cluster.store.find_task_run(execution.id, "after")
    assert after is not None and after.outputs["value"] == secret

    def seen() -> dict[str, Any] | None:
        tasks = httpx.get(f"{url}/api/tasks", timeout=10).json()
        return next((t for t in tasks.values() if t["name"] == "prod.etl.approval.complete_task"
                     and t.get("state") == "SUCCESS"), None)

    shown = wait_for(seen, timeout=60, every=0.5)
    assert secret not in str(shown)
    assert "'outputs': <1 key>" in shown["kwargs"]
