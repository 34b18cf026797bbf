"""Prometheus metrics scraped from a real prefork worker (`--metrics-port`)
and a real `harrier scheduler` (GET /metrics) after running flows on a real
Redis: the values match what ran."""

from __future__ import annotations

import base64
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from harrier.common.state import State
from tests.fixtures.http_server import HttpServer
from tests.fixtures.redis_server import RedisServer, free_port
from tests.fixtures.workers import Cluster, make_cluster
from tests.integration.embedded import wait_for

ROOT = Path(__file__).resolve().parents[2]

FLOWS = {
    "ok.yaml": """
id: ok
namespace: metrics
tasks:
  - id: answer
    type: io.kestra.plugin.core.debug.Return
    format: "42"
""",
    "flaky.yaml": """
id: flaky
namespace: metrics
tasks:
  - id: second_time_lucky
    type: io.kestra.plugin.scripts.shell.Commands
    commands:
      - test -f "$MARKER" || { touch "$MARKER"; exit 1; }
    env:
      MARKER: "{{ vars.marker }}"
    retry: {type: constant, interval: PT0.2S, maxAttempts: 3}
variables:
  marker: MARKER_PATH
""",
    "broken.yaml": """
id: broken
namespace: metrics
tasks:
  - id: boom
    type: io.kestra.plugin.core.execution.Fail
""",
    "parked.yaml": """
id: parked
namespace: metrics
tasks:
  - id: waits
    type: io.kestra.plugin.core.log.Log
    message: never picked up
    workerGroup: {key: nobody}
""",
    "secret_call.yaml": """
id: secret_call
namespace: metrics
tasks:
  - id: call
    type: io.kestra.plugin.core.http.Request
    uri: "HTTP_SERVER/echo/metrics-secret?api_key={{ secret('API_KEY') }}"
  - id: refused
    type: io.kestra.plugin.core.http.Request
    uri: "HTTP_SERVER/status/500?api_key={{ secret('API_KEY') }}"
""",
    "ticking.yaml": """
id: ticking
namespace: metrics.cron
tasks:
  - id: tick
    type: io.kestra.plugin.core.log.Log
    message: tick
triggers:
  - id: every_second
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "* * * * * *"
    withSeconds: true
    recoverMissedSchedules: NONE
  - id: hook
    type: io.kestra.plugin.core.trigger.Webhook
    key: the-key
""",
}


class Metrics:
    def __init__(self, text: str) -> None:
        self.samples = [sample for family in text_string_to_metric_families(text)
                        for sample in family.samples]

    def value(self, name: str, **labels: str) -> float:
        found = [s.value for s in self.samples
                 if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]
        return sum(found)


def scrape(url: str) -> Metrics:
    response = httpx.get(url, timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return Metrics(response.text)


SECRET = "k3y/with+chars"


@pytest.fixture(scope="module")
def system(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory,
           http_server: HttpServer) -> Iterator[tuple[Cluster, str, str]]:
    redis_server.client().flushall()
    workdir = tmp_path_factory.mktemp("metrics")
    flows = workdir / "flows"
    flows.mkdir()
    for name, text in FLOWS.items():
        (flows / name).write_text(text.replace("MARKER_PATH", str(workdir / "marker"))
                                  .replace("HTTP_SERVER", http_server.url))
    api_port, metrics_port = free_port(), free_port()
    cluster = make_cluster(redis_server.url, redis_server.url, workdir,
                           HARRIER_FLOWS_DIR=str(flows), HARRIER_API_PORT=str(api_port),
                           HARRIER_API_HOST="127.0.0.1",
                           SECRET_API_KEY=base64.b64encode(SECRET.encode()).decode())
    scheduler_log = (workdir / "scheduler.log").open("wb")
    scheduler = subprocess.Popen([sys.executable, "-m", "harrier", "scheduler"], cwd=ROOT,
                                 env=cluster.env, stdout=scheduler_log,
                                 stderr=subprocess.STDOUT)
    try:
        cluster.start_worker("m1", concurrency=2, args=("--metrics-port", str(metrics_port)))
        api = f"http://127.0.0.1:{api_port}"

        def api_up() -> bool:
            try:
                return httpx.get(f"{api}/healthz", timeout=2).status_code == 200
            except httpx.HTTPError:
                assert scheduler.poll() is None, (workdir / "scheduler.log").read_text()
                return False

        wait_for(api_up, timeout=60, every=0.2)
        yield cluster, api, f"http://127.0.0.1:{metrics_port}/metrics"
    finally:
        scheduler.send_signal(signal.SIGTERM)
        try:
            scheduler.wait(20)
        except subprocess.TimeoutExpired:
            scheduler.kill()
        scheduler_log.close()
        cluster.stop_all()


def start(api: str, flow_id: str) -> str:
    response = httpx.post(f"{api}/api/v1/executions/metrics/{flow_id}", timeout=10)
    assert response.status_code == 200, response.text
    execution_id: str = response.json()["id"]
    return execution_id


def test_worker_and_api_metrics_count_what_ran(system):
    cluster, api, worker_metrics = system
    ids = [start(api, "ok") for _ in range(3)] + [start(api, "flaky"), start(api, "broken")]
    ended = {i: cluster.store.wait_terminal(i, 90).state.current for i in ids}
    assert list(ended.values()) == [State.SUCCESS] * 4 + [State.FAILED]
    start(api, "parked")
    assert httpx.post(f"{api}/api/v1/executions/webhook/metrics.cron/ticking/the-key",
                      timeout=10).status_code == 200
    assert httpx.post(f"{api}/api/v1/executions/webhook/metrics.cron/ticking/wrong",
                      timeout=10).status_code == 404

    worker = scrape(worker_metrics)
    ok = {"namespace_id": "metrics", "flow_id": "ok"}
    assert worker.value("kestra_executor_execution_end_count_total", **ok,
                        state="SUCCESS") == 3
    assert worker.value("kestra_executor_execution_duration_seconds_count", **ok,
                        state="SUCCESS") == 3
    assert worker.value("kestra_executor_execution_end_count_total", namespace_id="metrics",
                        flow_id="broken", state="FAILED") == 1
    assert worker.value("kestra_worker_ended_count_total",
                        task_type="io.kestra.plugin.core.debug.Return",
                        worker_group="default", state="SUCCESS") == 3
    commands = "io.kestra.plugin.scripts.shell.Commands"
    assert worker.value("kestra_worker_ended_count_total", task_type=commands,
                        state="SUCCESS") == 1
    assert worker.value("harrier_task_retries_total", task_type=commands) == 1
    assert worker.value("kestra_worker_ended_duration_seconds_count", task_type=commands) == 1
    # Every run_task delivery of the default queue (a retry counts once more).
    assert worker.value("kestra_worker_queued_duration_seconds_count",
                        worker_group="default") >= 3 + 2 + 1
    assert worker.value("kestra_worker_running_count", worker_group="default") == 0
    # No execution id anywhere in a label.
    assert not any(i in str(s.labels) for s in worker.samples for i in ids)

    def api_metrics() -> Metrics | None:
        found = scrape(f"{api}/metrics")
        fired = found.value("kestra_scheduler_trigger_count_total",
                            trigger_type="io.kestra.plugin.core.trigger.Schedule")
        return found if fired >= 1 and found.value("harrier_queue_length",
                                                   worker_group="nobody") == 1 else None

    scraped: Metrics = wait_for(api_metrics, timeout=30, every=0.5)
    assert scraped.value("kestra_executor_execution_started_count_total", **ok,
                         trigger_type="api") == 3
    assert scraped.value("kestra_executor_execution_started_count_total",
                         flow_id="ticking",
                         trigger_type="io.kestra.plugin.core.trigger.Webhook") == 1
    assert scraped.value("harrier_webhook_requests_total", status="200") == 1
    assert scraped.value("harrier_webhook_requests_total", status="404") == 1
    assert scraped.value("kestra_scheduler_trigger_delay_duration_seconds_count",
                         reason="tick") >= 1
    assert scraped.value("harrier_queue_oldest_age_seconds", worker_group="nobody") > 0
    # The default queue is reported too (its length varies: the Schedule fires every second).
    assert any(sample.name == "harrier_queue_length" and
               sample.labels == {"worker_group": "default"} for sample in scraped.samples)


def test_a_worker_port_already_in_use_is_a_clear_error(system):
    cluster, _, worker_metrics = system
    port = worker_metrics.rsplit(":", 1)[1].split("/")[0]
    result = subprocess.run(
        [sys.executable, "-m", "harrier", "worker", "--pool", "solo", "--metrics-port", port],
        env=cluster.env, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert f"--metrics-port {port}: cannot listen" in result.stderr


def test_a_secret_in_a_request_url_stays_out_of_the_worker_log(system, http_server):
    cluster, api, _ = system
    execution = cluster.store.wait_terminal(start(api, "secret_call"), 90)
    assert execution.state.current == State.FAILED  # the second call got a 500
    received = http_server.received("/echo/metrics-secret")[-1]
    assert received.target.endswith(f"api_key={SECRET}")  # it was sent
    failed = next(r for r in execution.task_runs if r.task_id == "refused")
    assert failed.error.endswith("api_key=******: answered 500 Internal Server Error: "
                                 "status 500")
    worker_log = cluster.workers[0].log()
    assert "metrics.secret_call.call" in worker_log  # the log does cover these tasks
    for form in (SECRET, "k3y%2Fwith%2Bchars", "k3y/with%2Bchars"):
        assert form not in worker_log


def test_the_metrics_directory_of_a_worker_killed_by_sigkill_goes_at_the_next_start(
        redis_server: RedisServer, tmp_path: Path) -> None:
    """A worker removes its metrics directory at exit; one killed with -9 cannot:
    the next worker to start removes it, and keeps a live worker's."""
    temp = tmp_path / "tmp"  # the workers' temporary directory (TMPDIR)
    temp.mkdir()
    cluster = make_cluster(redis_server.url, redis_server.url, tmp_path, TMPDIR=str(temp))

    def directories() -> set[str]:
        return {p.name for p in temp.glob("harrier-metrics-*")}

    def start_worker(name: str) -> str:
        before = directories()
        cluster.start_worker(name, concurrency=1, pool="solo", queues="metrics_dirs",
                             args=("--metrics-port", str(free_port())))
        (created,) = directories() - before
        return created

    try:
        alive = start_worker("alive")
        doomed = start_worker("doomed")
        cluster.kill(cluster.workers[1])  # SIGKILL, as the OOM killer would
        assert directories() == {alive, doomed}  # left behind
        later = start_worker("later")
        assert directories() == {alive, later}
        assert "removed 1 metrics directory of workers no longer running" in \
            cluster.workers[2].log()
    finally:
        cluster.stop_all()
    assert directories() == set()  # each removed its own at exit
