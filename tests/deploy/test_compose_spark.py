"""The Spark services of compose.yaml, run for real with the local pyspark and Java 17.

The `ilum-core` and `spark-worker` commands are taken from compose.yaml (only
ports and paths rewritten so they run side by side on a shared host), their
health checks are executed as written, and a seed flow's spark-submit command
(cluster mode, REST on the master) is submitted to them unchanged except for
the host name. This is what `docker compose up` runs inside the containers.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.conftest import missing_tool, seed_flows
from tests.deploy.test_compose import compose

pytestmark = pytest.mark.slow
READY_WITHIN = 180.0  # seconds; a deadline for waiting, not an assertion on speed


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.load(response)


def wait_for(
    condition: Callable[[], Any], what: str, processes: list[subprocess.Popen[bytes]]
) -> Any:
    deadline = time.monotonic() + READY_WITHIN
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        for process in processes:
            assert process.poll() is None, f"{process.args!r} exited while waiting for {what}"
        try:
            result = condition()
            if result:
                return result
        except (OSError, ValueError, KeyError) as error:  # not up yet
            last_error = error
        time.sleep(0.5)
    pytest.fail(f"timed out waiting for {what} (last error: {last_error})")


def stop(process: subprocess.Popen[bytes]) -> None:
    # Each service runs in its own session; its group holds the JVM and any driver it launched.
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=20)


class SparkPair:
    def __init__(self, tmp: Path) -> None:
        self.rpc, self.rest, self.master_ui, self.worker_ui = (free_port() for _ in range(4))
        self.tmp = tmp
        self.env = dict(os.environ)
        self.env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{self.env['PATH']}"
        self.env["SPARK_LOCAL_IP"] = "127.0.0.1"
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self, argv: list[str], env: dict[str, str], log: str) -> None:
        with open(self.tmp / log, "wb") as out:
            self.processes.append(subprocess.Popen(
                argv, env={**self.env, **env}, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True, cwd=self.tmp,
            ))

    def rewrite(self, text: str) -> str:
        return (
            text.replace("--port 7077", f"--port {self.rpc}")
            .replace("--webui-port 8080", f"--webui-port {self.master_ui}")
            .replace("/tmp/spark-master.properties", str(self.tmp / "spark-master.properties"))
            .replace("spark.master.rest.port 9888", f"spark.master.rest.port {self.rest}")
            .replace("spark://ilum-core:7077", f"spark://127.0.0.1:{self.rpc}")
            .replace("/app/work", str(self.tmp / "work"))
            .replace("127.0.0.1:8080/", f"127.0.0.1:{self.master_ui}/")
            .replace("127.0.0.1:8081/", f"127.0.0.1:{self.worker_ui}/")
        )

    def rewrite_list(self, items: list[str]) -> list[str]:
        rewritten = [self.rewrite(item) for item in items]
        return [str(self.worker_ui) if item == "8081" else item for item in rewritten]

    def health(self, service: dict[str, Any]) -> bool:
        argv = self.rewrite_list(service["healthcheck"]["test"][1:])
        return subprocess.run(argv, env=self.env, capture_output=True, timeout=30,
                              check=False).returncode == 0


@pytest.fixture(scope="module")
def spark(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SparkPair]:
    if shutil.which("java") is None:
        missing_tool("java not installed (Java 17 is needed for the Spark services)")
    if not (Path(sys.executable).parent / "spark-class").exists():
        missing_tool("pyspark not installed in this environment")
    services = compose()["services"]
    pair = SparkPair(tmp_path_factory.mktemp("spark"))
    master, worker = services["ilum-core"], services["spark-worker"]
    try:
        pair.start(
            pair.rewrite_list([*master["entrypoint"], *master["command"]]),
            {k: pair.rewrite(v) for k, v in master["environment"].items()}, "master.log",
        )
        wait_for(lambda: pair.health(master), "the ilum-core health check", pair.processes)
        pair.start(
            pair.rewrite_list([*worker["entrypoint"], *worker["command"]]),
            {k: str(v) for k, v in worker["environment"].items()}, "worker.log",
        )
        wait_for(lambda: pair.health(worker), "the spark-worker health check", pair.processes)
        yield pair
    finally:
        for process in reversed(pair.processes):
            stop(process)


def test_master_serves_rest_on_the_configured_port_and_the_worker_registers(spark) -> None:
    state = wait_for(
        lambda: (s := get_json(f"http://127.0.0.1:{spark.master_ui}/json/"))["aliveworkers"] and s,
        "the worker to register", spark.processes,
    )
    assert state["status"] == "ALIVE"
    assert state["workers"][0]["cores"] == 2  # SPARK_WORKER_CORES default in compose.yaml
    # The REST submission server answers on the port the seed flows use (9888 in compose).
    body = get_json(f"http://127.0.0.1:{spark.rest}/v1/submissions/status/driver-unknown")
    assert body["action"] == "SubmissionStatusResponse"
    assert body["success"] is False
    assert body["serverSparkVersion"]


def test_seed_flow_spark_submit_runs_its_driver_on_the_spark_worker(spark) -> None:
    flow = yaml.safe_load(seed_flows()["resilient-spark-job.yaml"])
    (command,) = flow["tasks"][0]["commands"]
    assert "--master spark://ilum-core:9888" in command
    local = command.replace("spark://ilum-core:9888", f"spark://127.0.0.1:{spark.rest}")
    submitted = subprocess.run(["bash", "-c", local], env=spark.env, capture_output=True,
                               text=True, timeout=300, check=False)
    output = submitted.stdout + submitted.stderr
    assert submitted.returncode == 0, output
    assert "Running Spark using the REST application submission protocol." in output
    (driver_id,) = set(re.findall(r"driver-\d{14}-\d{4}", output))

    def finished() -> dict[str, Any] | None:
        drivers = get_json(f"http://127.0.0.1:{spark.master_ui}/json/")["completeddrivers"]
        return next((d for d in drivers if d["id"] == driver_id), None)

    driver = wait_for(finished, f"driver {driver_id} to end", spark.processes)
    # The job's jar lives on S3 (s3a://, no hadoop-aws here), so the driver ends in
    # ERROR; what matters is that the master accepted it and a worker launched it.
    assert driver["state"] in ("ERROR", "FAILED", "FINISHED")
    assert driver["worker"].startswith("worker-")
    assert driver["mainclass"] == "com.enterprise.data.IngestionJob"
