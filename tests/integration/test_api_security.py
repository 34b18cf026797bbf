"""Safe by default, against real `harrier scheduler` / `harrier api` processes:
no open API beyond loopback, every page and document behind the credentials,
webhooks keyed."""

from __future__ import annotations

import itertools
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.fixtures.api_server import (
    ROOT,
    ApiServer,
    harrier_env,
    start_scheduler,
    stop,
    wait_healthy,
)
from tests.fixtures.redis_server import RedisServer, free_port

HOOK = """
id: hooked
namespace: sec.tests
tasks:
  - id: hi
    type: io.kestra.plugin.core.log.Log
    message: hi
triggers:
  - id: hook
    type: io.kestra.plugin.core.trigger.Webhook
    key: the-key-123
"""


def test_scheduler_beyond_loopback_without_credentials_refuses_to_start(
        redis_server: RedisServer, tmp_path: Path) -> None:
    env = harrier_env(redis_server.url, tmp_path, HARRIER_API_HOST="0.0.0.0",
                      HARRIER_API_PORT=str(free_port()))
    done = subprocess.run([sys.executable, "-m", "harrier", "scheduler"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "without authentication" in done.stderr
    assert "HARRIER_API_AUTH=none" in done.stderr


def test_embedded_api_beyond_loopback_without_credentials_refuses_to_start(
        tmp_path: Path) -> None:
    env = {k: v for k, v in harrier_env("", tmp_path).items() if not k.startswith("HARRIER_B")}
    env.update(HARRIER_API_HOST="0.0.0.0", HARRIER_API_PORT=str(free_port()))
    done = subprocess.run([sys.executable, "-m", "harrier", "api"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "without authentication" in done.stderr


def test_opting_out_serves_an_open_api_and_warns_at_start(
        redis_server: RedisServer, tmp_path: Path) -> None:
    port = free_port()
    env = harrier_env(redis_server.url, tmp_path, HARRIER_API_HOST="0.0.0.0",
                      HARRIER_API_PORT=str(port), HARRIER_API_AUTH="none")
    server = ApiServer(f"http://127.0.0.1:{port}", start_scheduler(env, tmp_path / "log"),
                       tmp_path / "log")
    try:
        wait_healthy(server)
        assert httpx.get(f"{server.url}/api/v1/flows", timeout=10).status_code == 200
        assert "WARNING" in server.log() and "HARRIER_API_AUTH=none" in server.log()
    finally:
        stop(server.process)


@pytest.mark.parametrize("path", ["/api/v1/flows", "/api/v1/executions", "/api/v1/configs",
                                  "/api/v1/openapi.json", "/docs", "/ui", "/ui/flows",
                                  "/api/v1/main/flows"])
def test_every_page_and_document_needs_the_credentials(api_server: ApiServer, path: str
                                                       ) -> None:
    anonymous = httpx.get(f"{api_server.url}{path}", timeout=30)
    assert anonymous.status_code == 401, path
    assert "Basic" in anonymous.headers["www-authenticate"]
    with api_server.client() as client:
        assert client.get(path, follow_redirects=True).status_code == 200, path


def test_health_is_open_and_webhooks_need_only_their_key(api_server: ApiServer) -> None:
    assert httpx.get(f"{api_server.url}/healthz", timeout=30).status_code == 200
    with api_server.client() as client:
        pushed = client.post("/api/v1/flows", content=HOOK,
                             headers={"Content-Type": "application/x-yaml"})
        assert pushed.status_code == 200, pushed.text
    base = f"{api_server.url}/api/v1/executions/webhook/sec.tests/hooked"
    assert httpx.post(f"{base}/wrong-key", timeout=30).status_code == 404
    hooked = httpx.post(f"{base}/the-key-123", json={"a": 1}, timeout=30)
    assert hooked.status_code == 200 and hooked.json()["id"]


def alias_bomb(levels: int = 9) -> str:
    """Like the 344-byte flow that drove an unbounded scheduler to 21 GB: nine
    levels of nine aliases each, 9**9 values once expanded."""
    names = "abcdefghi"[:levels]
    lines = ["a: &a [l,l,l,l,l,l,l,l,l]"]
    lines += [f"{n}: &{n} [{','.join([f'*{p}'] * 9)}]" for p, n in itertools.pairwise(names)]
    head = "id: bomb\nnamespace: sec.tests\n"
    return head + "\n".join(lines) + f"\ntasks: *{names[-1]}\n"


def peak_rss_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines()
                    if line.startswith("VmHWM:")))


YAML_INPUT_FLOW = """
id: yaml-input
namespace: sec.tests
inputs:
  - id: doc
    type: YAML
tasks:
  - id: hi
    type: io.kestra.plugin.core.log.Log
    message: "{{ inputs.doc }}"
"""


def test_alias_bombs_are_refused_at_once_and_health_keeps_answering(
        api_server: ApiServer) -> None:
    bomb = alias_bomb()
    assert len(bomb.encode()) < 400
    before = peak_rss_kib(api_server.process.pid)
    # A generous client timeout: an unbounded parser took 35 s on a smaller bomb.
    with api_server.client(timeout=10) as client:
        refused = client.post("/api/v1/flows", content=bomb,
                              headers={"Content-Type": "application/x-yaml"})
        assert refused.status_code in (400, 422), refused.text
        assert "aliases" in refused.text
        # validate answers 200 with the problems listed, as Kestra's does.
        validated = client.post("/api/v1/flows/validate", content=bomb,
                                headers={"Content-Type": "application/x-yaml"})
        assert "aliases" in validated.json()[0]["constraints"]
        assert client.post("/api/v1/flows", content=YAML_INPUT_FLOW,
                           headers={"Content-Type": "application/x-yaml"}).status_code == 200
        as_input = client.post("/api/v1/executions/sec.tests/yaml-input",
                               json={"doc": bomb})
        assert as_input.status_code == 422, as_input.text
        assert "input 'doc'" in as_input.text and "aliases" in as_input.text
        assert client.get("/healthz").status_code == 200
        assert client.get("/api/v1/flows/sec.tests/bomb").status_code == 404
    grown_mib = (peak_rss_kib(api_server.process.pid) - before) / 1024
    assert grown_mib < 100, f"the scheduler's peak memory grew by {grown_mib:.0f} MiB"


def test_big_bodies_are_413_on_every_kind_of_route(api_server: ApiServer) -> None:
    """The 20 MB JSON inputs an execution accepted before, a flow, a webhook."""
    big = b'{"doc": "' + b"x" * (20 * 1024 * 1024) + b'"}'
    with api_server.client() as client:
        for method, path in (("POST", "/api/v1/executions/sec.tests/yaml-input"),
                             ("POST", "/api/v1/flows"), ("PUT", "/api/v1/triggers"),
                             ("POST", "/api/v1/executions/webhook/sec.tests/hooked/the-key-123")):
            response = client.request(method, path, content=big,
                                      headers={"Content-Type": "application/json"})
            assert response.status_code == 413, (path, response.text)
            assert "HARRIER_API_MAX_BODY" in response.json()["message"]
        assert client.get("/healthz").status_code == 200


def children_of(pid: int) -> list[int]:
    found = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":\t", 1) for line in status.read_text().splitlines()
                          if ":\t" in line)
        except OSError:
            continue  # gone meanwhile
        if fields.get("PPid", "").strip() == str(pid):
            found.append(int(status.parent.name))
    return found


def test_several_api_processes_serve_webhooks_and_stop_together(
        redis_server: RedisServer, tmp_path: Path) -> None:
    """HARRIER_API_WORKERS=2: uvicorn worker processes build the app from the
    environment; every webhook call makes one execution; SIGTERM stops them all."""
    port = free_port()
    env = harrier_env(redis_server.url, tmp_path, HARRIER_API_HOST="127.0.0.1",
                      HARRIER_API_PORT=str(port), HARRIER_API_WORKERS="2",
                      HARRIER_API_USERNAME="u", HARRIER_API_PASSWORD="p")
    (tmp_path / "flows" / "hook.yaml").write_text(
        HOOK.replace("id: hooked", "id: multi"))
    server = ApiServer(f"http://127.0.0.1:{port}", start_scheduler(env, tmp_path / "log"),
                       tmp_path / "log")
    try:
        wait_healthy(server)
        url = f"{server.url}/api/v1/executions/webhook/sec.tests/multi/the-key-123"
        deadline = time.monotonic() + 60  # the flows directory is pushed at start
        while httpx.post(url, json={"n": -1}, timeout=30).status_code != 200:
            assert time.monotonic() < deadline, server.log()
            time.sleep(0.2)
        ids = {httpx.post(url, json={"n": n}, timeout=30).json()["id"] for n in range(20)}
        assert len(ids) == 20
        listed = httpx.get(f"{server.url}/api/v1/executions", auth=("u", "p"), timeout=30,
                           params={"namespace": "sec.tests", "flowId": "multi"}).json()
        assert listed["total"] == 21
        assert len(children_of(server.process.pid)) >= 2
    finally:
        workers = children_of(server.process.pid)
        stop(server.process)
    assert server.process.returncode == 0, server.log()
    deadline = time.monotonic() + 30
    while alive := [pid for pid in workers if running(pid)]:
        assert time.monotonic() < deadline, [Path(f"/proc/{p}/cmdline").read_bytes()
                                             for p in alive]
        time.sleep(0.1)


def running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"
