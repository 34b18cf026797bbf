"""compose.yaml: structure with PyYAML, then Debian's docker-compose `config` when present."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from typing import Any

import pytest
import yaml

from tests.deploy.conftest import COMPOSE, REPO, missing_tool, seed_flows

SERVICES = {"redis", "scheduler", "worker", "ilum-core", "spark-worker", "prometheus",
            "grafana"}
MONITORING = {"prometheus", "grafana"}  # only with `--profile monitoring`
HARRIER_SERVICES = ("scheduler", "worker")
VARIABLE = re.compile(r"\$\{(\w+)(?::?([-?])([^}]*))?\}")
# What an operator must set: compose refuses to start without it.
REQUIRED = {"HARRIER_API_PASSWORD": "a-password"}


class MissingVariable(ValueError):
    pass


def interpolate(text: str, environ: dict[str, str]) -> str:
    """Compose's `${VAR:-default}` and `${VAR:?error}` over `environ`; `$$` is a `$`."""

    def value(match: re.Match[str]) -> str:
        name, kind, rest = match.groups()
        if environ.get(name):
            return environ[name]
        if kind == "?":
            raise MissingVariable(f"{name}: {rest}")
        return rest or ""

    return VARIABLE.sub(value, text).replace("$$", "$")


def compose(environ: dict[str, str] | None = None) -> dict[str, Any]:
    return yaml.safe_load(interpolate(COMPOSE.read_text(), REQUIRED if environ is None
                                      else environ))


def seconds(duration: str) -> int:
    parts = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?", duration)
    assert parts and duration, duration
    hours, minutes, secs = (int(p or 0) for p in parts.groups())
    return hours * 3600 + minutes * 60 + secs


def properties(text: str) -> dict[str, str]:
    pairs = (line.split(None, 1) for line in text.splitlines() if line.strip())
    return {key: value.strip() for key, value in pairs}


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    return compose()["services"]


def test_declares_the_whole_system(services) -> None:
    assert set(services) == SERVICES


def test_every_service_restarts_and_has_a_healthcheck(services) -> None:
    for name, service in services.items():
        assert service.get("restart") in ("unless-stopped", "always"), name
        test = service.get("healthcheck", {}).get("test")
        assert test and test[0] == "CMD", name


def test_redis_persists_with_aof_on_a_volume(services) -> None:
    redis = services["redis"]
    assert redis["image"].startswith("redis:7")
    command = redis["command"]
    assert command[command.index("--appendonly") + 1] == "yes"
    assert "redis-data:/data" in redis["volumes"]
    assert "redis-data" in compose()["volumes"]
    assert redis["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]


def test_harrier_services_share_the_image_and_mount_flows_read_only(services) -> None:
    images = {services[name]["image"] for name in (*HARRIER_SERVICES, "ilum-core", "spark-worker")}
    assert images == {"harrier:latest"}
    for name in HARRIER_SERVICES:
        service = services[name]
        assert service["build"]["context"] == "."
        assert "./flows:/app/flows:ro" in service["volumes"], name
        # Files between tasks: the API and every worker see one storage volume.
        assert "harrier-storage:/app/storage" in service["volumes"], name
        assert service["depends_on"]["redis"] == {"condition": "service_healthy"}, name
        env = service["environment"]
        assert env["HARRIER_BROKER_URL"] == "redis://redis:6379/0"
        assert env["HARRIER_FLOWS_DIR"] == "/app/flows"
        assert env["HARRIER_STORAGE_DIR"] == "/app/storage"


def test_scheduler_serves_the_api_on_8080_with_a_healthz_check(services) -> None:
    scheduler = services["scheduler"]
    assert scheduler["command"] == ["scheduler"]
    assert scheduler["ports"] == ["8080:8080"]
    assert "/healthz" in " ".join(scheduler["healthcheck"]["test"])


def test_the_api_password_is_required_and_reaches_only_the_scheduler(services) -> None:
    with pytest.raises(MissingVariable, match="HARRIER_API_PASSWORD"):
        compose({})
    env = services["scheduler"]["environment"]
    assert env["HARRIER_API_USERNAME"] == "admin"
    assert env["HARRIER_API_PASSWORD"] == REQUIRED["HARRIER_API_PASSWORD"]
    assert env["HARRIER_API_HOST"] == "0.0.0.0"
    assert "HARRIER_API_AUTH" not in env
    assert not any(name.startswith("HARRIER_API_") for name in services["worker"]["environment"])
    assert str(env["HARRIER_API_MAX_BODY"]) == "1048576"
    assert str(env["HARRIER_API_WORKERS"]) == "1"


def test_worker_scales_and_shuts_down_warm(services) -> None:
    worker = services["worker"]
    assert worker["command"] == ["worker", "--metrics-port", "9808"]
    # --scale worker=N needs neither a fixed name nor a fixed host port.
    assert "container_name" not in worker
    assert "ports" not in worker
    assert worker["healthcheck"]["test"] == ["CMD", "harrier", "health"]
    assert seconds(worker["stop_grace_period"]) >= 300


def test_ilum_core_is_a_spark_master_with_rest_on_9888(services) -> None:
    master = services["ilum-core"]
    assert master["hostname"] == "ilum-core"
    (command,) = master["command"]
    assert "spark-class org.apache.spark.deploy.master.Master" in command
    assert "--host 0.0.0.0 --port 7077" in command
    assert "--properties-file /tmp/spark-master.properties" in command
    props = properties(master["environment"]["SPARK_MASTER_PROPERTIES"])
    assert props == {"spark.master.rest.enabled": "true", "spark.master.rest.port": "9888"}


def test_spark_worker_attaches_to_ilum_core(services) -> None:
    worker = services["spark-worker"]
    assert worker["entrypoint"] == ["spark-class"]
    assert worker["command"][:2] == ["org.apache.spark.deploy.worker.Worker",
                                     "spark://ilum-core:7077"]
    assert worker["depends_on"]["ilum-core"] == {"condition": "service_healthy"}
    assert "container_name" not in worker and "ports" not in worker


def test_seed_flows_target_the_compose_spark_master(services) -> None:
    masters = set()
    for name, text in seed_flows().items():
        found = re.findall(r"--master\s+spark://([\w.-]+):(\d+)", text)
        assert found, f"{name} has no spark-submit --master"
        masters.update(found)
    rest_port = properties(services["ilum-core"]["environment"]["SPARK_MASTER_PROPERTIES"])[
        "spark.master.rest.port"]
    assert masters == {("ilum-core", rest_port)}


def test_docker_compose_accepts_the_file() -> None:
    binary = shutil.which("docker-compose")
    if binary is None:
        missing_tool("docker-compose not installed (apt-get install -y docker-compose)")
    environ = {k: v for k, v in os.environ.items() if not k.startswith("HARRIER_")}
    refused = subprocess.run(
        [binary, "-f", str(COMPOSE), "config", "-q"],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=False, env=environ,
    )
    assert refused.returncode != 0 and "HARRIER_API_PASSWORD" in refused.stderr
    environ.update(REQUIRED)
    result = subprocess.run(
        [binary, "-f", str(COMPOSE), "config", "-q"],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=False, env=environ,
    )
    assert result.returncode == 0, result.stderr
    listed = subprocess.run(
        [binary, "-f", str(COMPOSE), "config", "--services"],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=True, env=environ,
    )
    assert set(listed.stdout.split()) == SERVICES


def test_monitoring_profile_scrapes_the_scheduler_and_every_worker(services) -> None:
    assert {n for n, s in services.items() if s.get("profiles") == ["monitoring"]} == MONITORING
    config = yaml.safe_load(services["prometheus"]["environment"]["PROMETHEUS_CONFIG"])
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    api_port = services["scheduler"]["environment"]["HARRIER_API_PORT"]
    assert jobs["harrier-scheduler"]["static_configs"][0]["targets"] == [f"scheduler:{api_port}"]
    worker_port = services["worker"]["command"][services["worker"]["command"].index(
        "--metrics-port") + 1]
    assert jobs["harrier-worker"]["dns_sd_configs"] == [
        {"names": ["worker"], "type": "A", "port": int(worker_port)}]


def test_grafana_gets_prometheus_and_the_repository_dashboard(services) -> None:
    grafana = services["grafana"]
    sources = yaml.safe_load(grafana["environment"]["GRAFANA_DATASOURCES"])["datasources"]
    assert sources[0]["url"] == "http://prometheus:9090" and sources[0]["isDefault"]
    providers = yaml.safe_load(grafana["environment"]["GRAFANA_DASHBOARDS"])["providers"]
    mounted = {target: source for source, target, *_ in
               (volume.split(":") for volume in grafana["volumes"])}
    source = mounted[providers[0]["options"]["path"]]
    assert (REPO / source / "harrier.json").is_file()
