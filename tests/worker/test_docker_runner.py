"""The Docker runner against a real, private Docker engine (tests/fixtures/docker.py)."""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from harrier.common.errors import DockerError
from harrier.worker.docker.engine import ContainerSpec, DockerEngine
from harrier.worker.runners.base import RunRequest
from harrier.worker.runners.docker import (
    DEADLINE_LABEL,
    MANAGED_LABEL,
    WORKER_LABEL,
    DockerOptions,
    DockerRunner,
    parse_memory,
    remove_orphans,
)
from tests.fixtures.docker import DockerTestEngine, docker_engine  # noqa: F401

pytestmark = pytest.mark.slow


class Lines:
    """A line sink that remembers what arrived, in order."""

    def __init__(self) -> None:
        self.items: list[tuple[str, str]] = []

    def __call__(self, stream: str, line: str) -> None:
        self.items.append((stream, line))

    def of(self, stream: str) -> list[str]:
        return [line for kind, line in self.items if kind == stream]


@pytest.fixture
def runner(docker_engine: DockerTestEngine) -> Any:  # noqa: F811
    docker_runner = DockerRunner(docker_engine.host, worker_name="test-worker")
    yield docker_runner
    docker_runner.close()


@pytest.fixture
def engine(docker_engine: DockerTestEngine) -> Any:  # noqa: F811
    with docker_engine.engine() as client:
        yield client


def request(docker_engine: DockerTestEngine, workdir: Path, commands: list[str],  # noqa: F811
            **kwargs: Any) -> RunRequest:
    options = {"containerImage": docker_engine.image, "pullPolicy": "NEVER",
               **kwargs.pop("options", {})}
    return RunRequest(commands=commands, workdir=workdir, options=options, **kwargs)


def containers_of(engine: DockerEngine, task_run_id: str) -> list[str]:
    found = engine.list_containers({"io.harrier.task_run_id": task_run_id})
    return [container.id for container in found]


def test_stdout_and_stderr_lines_arrive_in_order_per_stream(
        runner: DockerRunner, docker_engine: DockerTestEngine, tmp_path: Path) -> None:  # noqa: F811
    lines = Lines()
    result = runner.run(request(docker_engine, tmp_path, [
        "for i in 1 2 3; do echo out$i; echo err$i >&2; done",
        "seq 1 5000",
    ], on_line=lines))
    assert result.exit_code == 0
    assert lines.of("stderr") == ["err1", "err2", "err3"]
    assert lines.of("stdout") == ["out1", "out2", "out3", *(str(i) for i in range(1, 5001))]
    assert result.stdout_tail[-1] == "5000"


def test_a_line_longer_than_a_log_frame_arrives_whole(
        runner: DockerRunner, docker_engine: DockerTestEngine, tmp_path: Path) -> None:  # noqa: F811
    lines = Lines()
    runner.run(request(docker_engine, tmp_path,
                       ["yes abcdefgh | head -n 40000 | tr -d '\\n'", "echo", "printf tail"],
                       on_line=lines))
    assert lines.of("stdout") == ["abcdefgh" * 40000, "tail"]


def test_outputs_line_sets_outputs_and_is_not_logged(
        runner: DockerRunner, docker_engine: DockerTestEngine, tmp_path: Path) -> None:  # noqa: F811
    lines = Lines()
    result = runner.run(request(docker_engine, tmp_path, [
        """echo '::{"outputs":{"a":1}}::'""",
        """echo '::{"outputs":{"b":"two"}}::'""",
        "echo done",
    ], on_line=lines))
    assert result.outputs == {"a": 1, "b": "two"}
    assert lines.of("stdout") == ["done"]


def test_files_written_in_the_workdir_are_visible_on_the_host(
        runner: DockerRunner, docker_engine: DockerTestEngine, tmp_path: Path) -> None:  # noqa: F811
    (tmp_path / "input.txt").write_text("from the host\n")
    result = runner.run(request(docker_engine, tmp_path, [
        "cat input.txt > copy.txt", "echo from the container > \"$WORKING_DIR/out.txt\"",
    ]))
    assert result.exit_code == 0
    assert (tmp_path / "copy.txt").read_text() == "from the host\n"
    assert (tmp_path / "out.txt").read_text() == "from the container\n"


def test_env_of_the_task_and_of_the_task_runner_are_passed(
        runner: DockerRunner, docker_engine: DockerTestEngine, tmp_path: Path) -> None:  # noqa: F811
    lines = Lines()
    runner.run(request(docker_engine, tmp_path, ['echo "$GREETING $TARGET"'],
                       env={"GREETING": "hello", "TARGET": "task"},
                       options={"env": {"TARGET": "runner"}}, on_line=lines))
    assert lines.of("stdout") == ["hello runner"]


def test_non_zero_exit_gives_exit_code_and_last_stderr_lines(
        runner: DockerRunner, docker_engine: DockerTestEngine, tmp_path: Path,  # noqa: F811
        engine: DockerEngine) -> None:
    result = runner.run(request(docker_engine, tmp_path, [
        "seq 1 100 >&2", "echo 'spark-submit: no such file' >&2", "exit 3",
    ], labels={"task_run_id": "nonzero"}))
    assert result.exit_code == 3
    assert not result.timed_out and not result.cancelled
    assert result.stderr_tail[-1] == "spark-submit: no such file"
    assert result.stderr_tail[-2] == "100"
    assert containers_of(engine, "nonzero") == []


def test_timeout_stops_and_removes_the_container(
        runner: DockerRunner, docker_engine: DockerTestEngine, tmp_path: Path,  # noqa: F811
        engine: DockerEngine) -> None:
    lines = Lines()
    result = runner.run(request(docker_engine, tmp_path, ["echo started", "sleep 300"],
                                timeout=1.0, on_line=lines,
                                labels={"execution_id": "e1", "task_run_id": "timeout"}))
    assert result.timed_out and not result.cancelled
    assert result.exit_code != 0
    assert lines.of("stdout") == ["started"]
    assert containers_of(engine, "timeout") == []


def test_cancel_event_stops_and_removes_the_container(
        runner: DockerRunner, docker_engine: DockerTestEngine, tmp_path: Path,  # noqa: F811
        engine: DockerEngine) -> None:
    cancel = threading.Event()
    seen_in_container: list[str] = []

    def on_line(stream: str, line: str) -> None:
        # Cancel once the container is certainly running, and check it is labelled.
        seen_in_container.extend(containers_of(engine, "cancel"))
        cancel.set()

    result = runner.run(request(docker_engine, tmp_path, ["echo started", "sleep 300"],
                                cancel=cancel, on_line=on_line,
                                labels={"task_run_id": "cancel"}))
    assert result.cancelled and not result.timed_out
    assert len(seen_in_container) == 1
    assert containers_of(engine, "cancel") == []


def test_missing_image_with_pull_policy_never_names_the_image(
        runner: DockerRunner, docker_engine: DockerTestEngine, tmp_path: Path) -> None:  # noqa: F811
    with pytest.raises(DockerError, match=r"'harrier-no-such-image:1\.0'.*NEVER") as caught:
        runner.run(request(docker_engine, tmp_path, ["true"],
                           options={"containerImage": "harrier-no-such-image:1.0"}))
    assert not caught.value.retryable


def test_missing_image_that_cannot_be_pulled_names_the_image_and_the_policy(
        runner: DockerRunner, docker_engine: DockerTestEngine, tmp_path: Path) -> None:  # noqa: F811
    # No registry is reachable from the test machine, so the pull fails.
    with pytest.raises(DockerError, match=r"'harrier-test\.invalid/none:1'.*IF_NOT_PRESENT"):
        runner.run(request(docker_engine, tmp_path, ["true"],
                           options={"containerImage": "harrier-test.invalid/none:1",
                                    "pullPolicy": "IF_NOT_PRESENT"}))


def test_unreachable_engine_names_the_socket(
        docker_engine: DockerTestEngine, tmp_path: Path) -> None:  # noqa: F811
    socket = tmp_path / "nobody-listens.sock"
    nowhere = DockerRunner(f"unix://{socket}")
    with pytest.raises(DockerError, match="cannot reach the Docker engine") as caught:
        nowhere.run(request(docker_engine, tmp_path, ["true"]))
    assert str(socket) in str(caught.value)
    nowhere.close()


def test_engine_address_in_options_overrides_the_runner_default(
        docker_engine: DockerTestEngine, tmp_path: Path) -> None:  # noqa: F811
    runner = DockerRunner(f"unix://{tmp_path / 'nobody-listens.sock'}")
    result = runner.run(request(docker_engine, tmp_path, ["true"],
                                options={"host": docker_engine.host}))
    assert result.exit_code == 0
    runner.close()


def test_memory_limit_exceeded_is_reported_as_oom_kill(
        runner: DockerRunner, docker_engine: DockerTestEngine, tmp_path: Path,  # noqa: F811
        engine: DockerEngine) -> None:
    with pytest.raises(DockerError, match=r"OOM-killed.*16 MiB") as caught:
        runner.run(request(docker_engine, tmp_path, [
            "echo filling memory", "x=$(yes | head -c 200000000)", "echo survived",
        ], options={"memory": {"memory": "16MB"}}, labels={"task_run_id": "oom"}))
    assert "filling memory" in str(caught.value)
    assert "survived" not in str(caught.value)
    assert containers_of(engine, "oom") == []


def test_resource_limits_labels_and_workdir_are_applied_to_the_container(
        runner: DockerRunner, docker_engine: DockerTestEngine, tmp_path: Path,  # noqa: F811
        engine: DockerEngine) -> None:
    lines = Lines()
    result = runner.run(request(docker_engine, tmp_path, ["pwd"], on_line=lines,
                                labels={"execution_id": "e9", "task_run_id": "kept"},
                                options={"cpu": {"cpus": 0.5}, "memory": {"memory": "64MB"},
                                         "networkMode": "none", "delete": False}))
    assert result.exit_code == 0
    assert lines.of("stdout") == [str(tmp_path.resolve())]
    [container_id] = containers_of(engine, "kept")
    details = engine.container_details(container_id)
    engine.remove_container(container_id)
    assert details["HostConfig"]["NanoCpus"] == 500_000_000
    assert details["HostConfig"]["Memory"] == 64 * 1024 * 1024
    assert details["HostConfig"]["NetworkMode"] == "none"
    assert details["Config"]["Labels"]["io.harrier.execution_id"] == "e9"
    assert details["Config"]["Labels"][MANAGED_LABEL] == "true"
    assert details["Config"]["Labels"][WORKER_LABEL] == "test-worker"


def test_remove_orphans_removes_only_the_dead_workers_and_expired_containers(
        docker_engine: DockerTestEngine, engine: DockerEngine) -> None:  # noqa: F811
    def start(worker: str | None, **extra: str) -> str:
        labels = {"owner": "orphan-test", **extra}
        if worker is not None:
            labels |= {MANAGED_LABEL: "true", WORKER_LABEL: worker}
        container_id = engine.create_container(ContainerSpec(
            image=docker_engine.image, cmd=["sleep", "300"], labels=labels))
        engine.start_container(container_id)
        return container_id

    dead = [start("dead-worker"), start("dead-worker")]
    alive, foreign = start("live-worker"), start(None)
    expired = start("live-worker", **{DEADLINE_LABEL: f"{time.time() - 3600:.0f}"})
    running = start("live-worker", **{DEADLINE_LABEL: f"{time.time() + 3600:.0f}"})

    assert remove_orphans(engine, worker="dead-worker", older_than=3600) == [expired]
    assert sorted(remove_orphans(engine, worker="dead-worker")) == sorted(dead)
    left = {container.id for container in engine.list_containers({"owner": "orphan-test"})}
    assert left == {alive, foreign, running}
    for container_id in left:
        engine.remove_container(container_id)


@pytest.mark.parametrize(("text", "expected"), [
    ("512MB", 512 << 20), ("512Mb", 512 << 20), ("512m", 512 << 20), ("1g", 1 << 30),
    ("1.5GiB", 3 << 29), ("64k", 64 << 10), (1048576, 1 << 20), ("100", 100),
])
def test_memory_sizes_are_read_as_the_docker_cli_reads_them(text: object, expected: int) -> None:
    assert parse_memory(text) == expected


@pytest.mark.parametrize("text", ["lots", "-5MB", "0", "12 potatoes", "5Mi"])
def test_bad_memory_size_names_the_field(text: str) -> None:
    with pytest.raises(DockerError, match=r"taskRunner\.memory\.memory"):
        parse_memory(text)


def test_kestra_spellings_of_the_options_are_accepted() -> None:
    options = DockerOptions.from_options({
        "type": "io.kestra.plugin.scripts.runner.docker.Docker",
        "containerImage": "apache/spark:3.5.5", "pullPolicy": "always",
        "cpu": {"cpus": 2}, "memory": {"memory": "1GB"}, "volumes": ["/data:/data:ro"],
        "networkMode": "host", "entryPoint": ["/opt/entrypoint.sh"], "user": "185",
        "delete": "false", "shmSize": "1g",
    })
    assert options.image == "apache/spark:3.5.5"
    assert options.pull_policy == "ALWAYS"
    assert (options.cpus, options.memory) == (2.0, 1 << 30)
    assert options.volumes == ["/data:/data:ro"]
    assert (options.network_mode, options.entrypoint, options.user) == (
        "host", ["/opt/entrypoint.sh"], "185")
    assert options.delete is False


@pytest.mark.parametrize(("options", "field"), [
    ({}, "containerImage"),
    ({"image": "x", "pullPolicy": "SOMETIMES"}, "pullPolicy"),
    ({"image": "x", "cpu": {"cpus": "many"}}, "cpu.cpus"),
    ({"image": "x", "volumes": ["/no-colon"]}, "volumes"),
])
def test_bad_options_name_the_field(options: dict[str, Any], field: str) -> None:
    with pytest.raises(DockerError, match=field):
        DockerOptions.from_options(options)


def test_the_older_runner_and_docker_syntax_picks_the_docker_runner_and_image() -> None:
    from harrier.common.flow import parse_flow
    from harrier.common.settings import Settings
    from harrier.worker.runners.registry import runner_for

    flow = parse_flow("""id: legacy
namespace: n
tasks:
  - id: old
    type: io.kestra.plugin.scripts.shell.Commands
    runner: DOCKER
    docker: {image: "apache/spark:3.5.5", pullPolicy: NEVER}
    commands: ["true"]
  - id: plain
    type: io.kestra.plugin.scripts.shell.Commands
    runner: PROCESS
    commands: ["true"]
""")
    old, plain = flow.tasks
    assert type(runner_for(old, Settings())).__name__ == "DockerRunner"
    options = DockerOptions.from_options(old.runner_options())
    assert (options.image, options.pull_policy) == ("apache/spark:3.5.5", "NEVER")
    assert type(runner_for(plain, Settings())).__name__ == "ProcessRunner"


@pytest.mark.parametrize(("runner", "message"), [
    ("{type: io.kestra.plugin.scripts.runner.docker.Docker, shmSize: 1g}",
     "`shmSize` is not supported yet by the Docker task runner"),
    ("{type: io.kestra.plugin.core.runner.Process, image: x}",
     "`image` is not supported yet by the Process task runner"),
    ("{type: io.kestra.plugin.ee.kubernetes.runner.Kubernetes}", "unknown task runner type"),
])
def test_task_runner_properties_it_does_not_honour_are_refused_at_validation(
        runner: str, message: str) -> None:
    from harrier.common.errors import FlowValidationError
    from harrier.common.flow import parse_flow

    with pytest.raises(FlowValidationError, match=re.escape(message)):
        parse_flow(f"""id: f
namespace: n
tasks:
  - id: t
    type: io.kestra.plugin.scripts.shell.Commands
    containerImage: alpine
    taskRunner: {runner}
    commands: ["true"]
""")


def test_the_worker_has_exactly_the_runners_the_flow_model_accepts() -> None:
    from harrier.common.task import TASK_RUNNER_OPTIONS
    from harrier.worker.runners.registry import RUNNERS

    assert set(RUNNERS) == set(TASK_RUNNER_OPTIONS)
