"""Acceptance: Kestra's own Python client (`pip install kestra`) runs flows
against `harrier api` (uvicorn on a real port), first embedded (no broker),
then over real Redis with `harrier worker` processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from harrier.common.redis_store import RedisStore
from tests.fixtures.redis_server import RedisServer, free_port

pytestmark = pytest.mark.slow

USER, PASSWORD, TOKEN = "admin", "s3cret", "token-abc"
GREET = """
id: greet
namespace: company.team
inputs:
  - id: who
    type: STRING
  - id: times
    type: INT
    defaults: 1
  - id: notes
    type: FILE
    required: false
tasks:
  - id: hello
    type: io.kestra.plugin.scripts.shell.Commands
    commands:
      - echo "hello {{ inputs.who }} x{{ inputs.times }}"
      - if [ -n "{{ inputs.notes ?? '' }}" ]; then cat "{{ inputs.notes ?? '' }}"; fi
"""
FAILING = """
id: broken
namespace: company.team
tasks:
  - id: boom
    type: io.kestra.plugin.scripts.shell.Commands
    commands: ["echo about to fail", "exit 3"]
"""


def start_api(env: dict[str, str], log_path: Path) -> tuple[subprocess.Popen[bytes], str]:
    """`harrier api` in its own process (the Celery app is per process, so the
    embedded and the Redis variants cannot share this one)."""
    port = free_port()
    env = {**env, "HARRIER_API_HOST": "127.0.0.1", "HARRIER_API_PORT": str(port),
           "HARRIER_LOG_LEVEL": "WARNING",
           "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-c", "from harrier.cli.api import api_command; api_command()"],
            env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        if process.poll() is not None or time.monotonic() > deadline:
            stop_api(process)
            raise RuntimeError(f"harrier api did not come up:\n{log_path.read_text()}")
        try:
            if httpx.get(f"{url}/healthz").status_code == 200:
                return process, url
        except httpx.TransportError:
            time.sleep(0.1)


def stop_api(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="module")
def harrier_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`harrier api` embedded (no broker configured) on a real port, with basic
    auth and a bearer token."""
    workdir = tmp_path_factory.mktemp("embedded-api")
    env = {k: v for k, v in os.environ.items() if not k.startswith("HARRIER_")}
    env.update({"HARRIER_WORK_DIR": str(workdir / "work"), "HARRIER_API_USERNAME": USER,
                "HARRIER_API_PASSWORD": PASSWORD, "HARRIER_API_TOKEN": TOKEN})
    process, url = start_api(env, workdir / "api.log")
    try:
        for text in (GREET, FAILING):
            response = httpx.post(f"{url}/api/v1/flows", content=text, auth=(USER, PASSWORD),
                                  headers={"Content-Type": "application/x-yaml"})
            assert response.status_code == 200, response.text
        yield url
    finally:
        stop_api(process)


@pytest.fixture
def kestra_env(harrier_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("KESTRA_HOSTNAME", harrier_url)
    for name in ("KESTRA_USER", "KESTRA_PASSWORD", "KESTRA_API_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    return harrier_url


def test_kestra_client_runs_a_flow_with_basic_auth_and_gets_success_and_logs(
        kestra_env: str) -> None:
    from kestra import Flow

    flow = Flow()
    # kestra 2.0 reads KESTRA_USER but never sets `password`; its docs set both.
    flow.user, flow.password = USER, PASSWORD
    result = flow.execute("company.team", "greet", {"who": "Ada", "times": 3})
    assert result.status == "SUCCESS"
    assert "INFO [hello] hello Ada x3" in result.log
    assert result.execution_id


def test_kestra_client_with_a_token_labels_and_a_file_input(
        kestra_env: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from kestra import Flow

    monkeypatch.setenv("KESTRA_API_TOKEN", TOKEN)
    notes = tmp_path / "notes.txt"
    notes.write_text("from a file\n")
    with notes.open("rb") as handle:
        result = Flow(labels_from_inputs=True).execute(
            "company.team", "greet", {"who": "Grace", "notes": ("notes", handle, "text/plain")})
    assert result.status == "SUCCESS"
    assert "hello Grace x1" in result.log and "from a file" in result.log
    execution = httpx.get(f"{kestra_env}/api/v1/executions/{result.execution_id}",
                          headers={"Authorization": f"Bearer {TOKEN}"}).json()
    assert {"key": "who", "value": "Grace"} in execution["labels"]


def test_kestra_client_reports_a_failed_flow(kestra_env: str) -> None:
    from kestra import Flow

    flow = Flow()
    flow.user, flow.password = USER, PASSWORD
    result = flow.execute("company.team", "broken")
    assert result.status == "FAILED"
    assert "about to fail" in result.log


def test_kestra_client_without_credentials_is_told_to_authenticate(kestra_env: str) -> None:
    from kestra import Flow

    with pytest.raises(Exception, match="Authentication required"):
        Flow().execute("company.team", "greet", {"who": "nobody"})


def test_log_follow_streams_entries_while_the_execution_runs(
        harrier_url: str, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    auth = (USER, PASSWORD)
    flow = f"""
id: gated
namespace: company.team
tasks:
  - id: wait
    type: io.kestra.plugin.scripts.shell.Commands
    commands:
      - echo started
      - while [ ! -e {gate} ]; do sleep 0.05; done
      - echo released
"""
    httpx.post(f"{harrier_url}/api/v1/flows", content=flow, auth=auth,
               headers={"Content-Type": "application/x-yaml"}).raise_for_status()
    execution_id = httpx.post(f"{harrier_url}/api/v1/executions/company.team/gated",
                              auth=auth).json()["id"]
    seen: list[str] = []
    # The task waits for the gate, which opens only after "started" arrived over
    # the stream: a buffered (non-live) stream would hang here until the timeout.
    with httpx.stream("GET", f"{harrier_url}/api/v1/logs/{execution_id}/follow", auth=auth,
                      timeout=60) as response:
        for line in response.iter_lines():
            seen.append(line)
            if '"message": "started"' in line:
                state = httpx.get(f"{harrier_url}/api/v1/executions/{execution_id}",
                                  auth=auth).json()["state"]["current"]
                assert state == "RUNNING"
                gate.touch()
    assert any('"message": "released"' in line for line in seen)
    assert "event: end" in seen


@dataclass
class RedisDeployment:
    env: dict[str, str]
    workdir: Path
    store: RedisStore
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)


def start_worker(deployment: RedisDeployment, name: str) -> None:
    """A real `harrier worker` process (prefork, two children); ready once it
    logs so. Readiness is read from its log rather than pinged, so this
    process's Celery app is never pointed at this broker."""
    log_path = deployment.workdir / f"{name}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "harrier", "worker", "-c", "2", "-n", f"{name}@kestra"],
            env=deployment.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deployment.workers.append(process)
    deadline = time.monotonic() + 60
    while f"{name}@kestra ready." not in log_path.read_text(errors="replace"):
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"worker {name} did not start:\n{log_path.read_text()}")
        time.sleep(0.1)


@pytest.fixture(scope="module")
def redis_deployment(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
                     ) -> Iterator[RedisDeployment]:
    """Real Redis and two real `harrier worker` processes; everything that
    enqueues runs in the `harrier api` subprocess."""
    if not redis_server.running:
        redis_server.start()
    redis_server.client().flushall()
    workdir = tmp_path_factory.mktemp("kestra-redis")
    env = {k: v for k, v in os.environ.items() if not k.startswith("HARRIER_")}
    env.update({"HARRIER_BROKER_URL": redis_server.url, "HARRIER_STORE_URL": redis_server.url,
                "HARRIER_RESULT_BACKEND": redis_server.url, "HARRIER_LOG_LEVEL": "INFO",
                "HARRIER_WORK_DIR": str(workdir / "work"),
                "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    deployment = RedisDeployment(env, workdir, RedisStore.from_url(redis_server.url))
    try:
        start_worker(deployment, "k1")
        start_worker(deployment, "k2")
        yield deployment
    finally:
        for process in deployment.workers:
            try:
                os.killpg(process.pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        deployment.store.close()


def test_kestra_client_against_redis_and_real_worker_processes(
        redis_deployment: RedisDeployment, monkeypatch: pytest.MonkeyPatch) -> None:
    cluster = redis_deployment
    process, url = start_api(cluster.env, cluster.workdir / "api.log")
    try:
        pushed = httpx.post(f"{url}/api/v1/flows", content=GREET,
                            headers={"Content-Type": "application/x-yaml"})
        assert pushed.status_code in (200, 409), pushed.text
        monkeypatch.setenv("KESTRA_HOSTNAME", url)
        for name in ("KESTRA_USER", "KESTRA_PASSWORD", "KESTRA_API_TOKEN"):
            monkeypatch.delenv(name, raising=False)
        from kestra import Flow

        result = Flow().execute("company.team", "greet", {"who": "Redis"})
        assert result.status == "SUCCESS", (cluster.workdir / "api.log").read_text()
        assert "hello Redis x1" in result.log
        stored = cluster.store.get_execution(result.execution_id)
        assert stored.task_runs[0].attempts[0].worker_id in {"k1@kestra", "k2@kestra"}
    finally:
        stop_api(process)
