"""The Docker task runner: runs a script task in a container on a Docker
engine, with the task's working directory mounted at the same path, its lines
streamed as they arrive and the container removed however the run ends."""

from __future__ import annotations

import re
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from harrier.common.errors import DockerError
from harrier.worker.docker.engine import (
    ContainerOutput,
    ContainerSpec,
    DockerEngine,
    PullPolicy,
)
from harrier.worker.runners.base import RunRequest, RunResult
from harrier.worker.runners.output_protocol import merge_outputs, parse_protocol_line

# Kestra's type names for this runner, for the task-runner registry.
TYPE_NAMES = (
    "io.kestra.plugin.scripts.runner.docker.Docker",
    "io.kestra.plugin.scripts.runner.docker.DockerTaskRunner",
)
MANAGED_LABEL = "io.harrier.managed"  # "true" on every container Harrier creates
WORKER_LABEL = "io.harrier.worker"  # name of the worker that created it
DEADLINE_LABEL = "io.harrier.deadline"  # unix time its task's timeout expires, if any
_DEADLINE_GRACE_SECONDS = 60.0
TAIL_LINES = 20  # last lines kept per stream for error messages
_CANCEL_POLL_SECONDS = 0.05

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgtp]?)(i?b?)\s*$", re.IGNORECASE)
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


def parse_memory(value: Any, field_name: str = "taskRunner.memory.memory") -> int:
    """Bytes from a Docker-style size: 536870912, "512MB", "512Mb", "512m",
    "512MiB", "1.5g". Units are binary, as the docker CLI reads them."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    match = _SIZE.match(str(value))
    if not match or (match.group(3) and match.group(3).lower() == "i"):
        raise DockerError(f"{field_name}: {value!r} is not a memory size "
                          "(e.g. 512MB, 2GB or a number of bytes)", retryable=False)
    size = int(float(match.group(1)) * _UNITS[match.group(2).lower()])
    if size <= 0:
        raise DockerError(f"{field_name}: {value!r} must be more than 0 bytes", retryable=False)
    return size


def _first(options: Mapping[str, Any], *names: str) -> Any:
    for name in names:
        if options.get(name) is not None:
            return options[name]
    return None


def _string_list(value: Any, field_name: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | tuple) and all(isinstance(item, str) for item in value):
        return list(value)
    raise DockerError(f"{field_name}: expected a list of strings, found {value!r}",
                      retryable=False)


@dataclass(frozen=True)
class DockerOptions:
    """The Kestra Docker task-runner properties Harrier honours. Other Kestra
    properties (credentials, shmSize, deviceRequests ...) are refused when the
    flow is validated (common/task.py TASK_RUNNER_OPTIONS)."""

    image: str
    pull_policy: PullPolicy = PullPolicy.IF_NOT_PRESENT
    host: str | None = None
    cpus: float | None = None
    memory: int | None = None  # bytes
    env: dict[str, str] = field(default_factory=dict)
    volumes: list[str] = field(default_factory=list)
    network_mode: str | None = None
    entrypoint: list[str] | None = None
    user: str | None = None
    delete: bool = True

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> DockerOptions:
        image = _first(options, "containerImage", "image")
        if not isinstance(image, str) or not image.strip():
            raise DockerError("containerImage: a Docker task runner needs an image "
                              "(set the task's containerImage)", retryable=False)
        policy_text = str(_first(options, "pullPolicy", "pull_policy") or "IF_NOT_PRESENT")
        try:
            pull_policy = PullPolicy(policy_text.upper())
        except ValueError:
            raise DockerError(f"taskRunner.pullPolicy: {policy_text!r} is not one of "
                              "IF_NOT_PRESENT, ALWAYS, NEVER", retryable=False) from None

        cpu = options.get("cpu")
        cpus_value = cpu.get("cpus") if isinstance(cpu, Mapping) else cpu
        cpus: float | None = None
        if cpus_value is not None:
            try:
                cpus = float(cpus_value)
            except (TypeError, ValueError):
                cpus = -1.0
            if cpus <= 0:
                raise DockerError(f"taskRunner.cpu.cpus: {cpus_value!r} is not a positive "
                                  "number of CPUs (e.g. 1 or 0.5)", retryable=False)

        memory_option = options.get("memory")
        memory_value = (memory_option.get("memory") if isinstance(memory_option, Mapping)
                        else memory_option)
        memory = parse_memory(memory_value) if memory_value is not None else None

        env = options.get("env") or {}
        if not isinstance(env, Mapping):
            raise DockerError(f"taskRunner.env: expected a map of names to values, "
                              f"found {env!r}", retryable=False)
        volumes = _string_list(options.get("volumes") or [], "taskRunner.volumes")
        for volume in volumes:
            if ":" not in volume:
                raise DockerError(f"taskRunner.volumes: {volume!r} is not "
                                  "'host-path:container-path[:ro]'", retryable=False)
        entrypoint = _first(options, "entryPoint", "entrypoint")
        network_mode = _first(options, "networkMode", "network_mode")
        if isinstance(network_mode, Mapping):  # Kestra's old {name: ...} spelling
            network_mode = network_mode.get("name")
        user = options.get("user")
        host = options.get("host")
        delete = options.get("delete", True)
        return cls(
            image=image.strip(),
            pull_policy=pull_policy,
            host=str(host) if host else None,
            cpus=cpus,
            memory=memory,
            env={str(key): str(value) for key, value in env.items()},
            volumes=volumes,
            network_mode=str(network_mode) if network_mode else None,
            entrypoint=(_string_list(entrypoint, "taskRunner.entryPoint")
                        if entrypoint is not None else None),
            user=str(user) if user is not None else None,
            delete=str(delete).lower() != "false",
        )


def _label_key(key: str) -> str:
    return key if "." in key else f"io.harrier.{key}"


def remove_orphans(engine: DockerEngine, *, worker: str | None = None,
                   older_than: float = 0.0) -> list[str]:
    """Remove (killing if needed) the containers Harrier left behind; returns
    their ids. A container is an orphan when it belongs to `worker` (any worker
    when None) and was created more than `older_than` seconds ago, or when its
    task's timeout passed more than a minute ago, whoever started it. Call it
    when a worker starts, with the stable name its predecessor had."""
    now = time.time()
    removed = []
    for container in engine.list_containers({MANAGED_LABEL: "true"}):
        mine = worker is None or container.labels.get(WORKER_LABEL) == worker
        deadline = _float_or_none(container.labels.get(DEADLINE_LABEL))
        expired = deadline is not None and deadline + _DEADLINE_GRACE_SECONDS < now
        if (mine and container.created <= now - older_than) or expired:
            engine.remove_container(container.id, force=True)
            removed.append(container.id)
    return removed


def _float_or_none(text: str | None) -> float | None:
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None


class DockerRunner:
    """Runs RunRequests in containers. `host` is the engine address (unix:///path
    or tcp://host:port; Settings.docker_host), overridden per task by the `host`
    option; `worker_name` (default: the host name) labels the
    containers so `remove_orphans` can find them after this worker dies."""

    def __init__(self, host: str, *, worker_name: str | None = None) -> None:
        self.host = host
        # The host name survives a restart of the worker's container or pod,
        # so the restarted worker finds what its predecessor left.
        self.worker_name = worker_name or socket.gethostname()
        self._engines: dict[str, DockerEngine] = {}
        self._lock = threading.Lock()

    def engine(self, host: str | None = None) -> DockerEngine:
        """The (shared, thread-safe) client of one engine."""
        address = host or self.host
        with self._lock:
            if address not in self._engines:
                self._engines[address] = DockerEngine(address)
            return self._engines[address]

    def close(self) -> None:
        with self._lock:
            for engine in self._engines.values():
                engine.close()
            self._engines.clear()

    def container_spec(self, request: RunRequest, options: DockerOptions) -> ContainerSpec:
        workdir = str(request.workdir.resolve())
        labels = {_label_key(key): str(value) for key, value in request.labels.items()}
        labels.update({MANAGED_LABEL: "true", WORKER_LABEL: self.worker_name})
        if request.timeout is not None:
            labels[DEADLINE_LABEL] = f"{time.time() + request.timeout:.0f}"
        return ContainerSpec(
            image=options.image,
            cmd=[*request.interpreter, "\n".join(request.commands)],
            # Clearing the image's entrypoint runs the interpreter itself, as
            # Kestra does, unless the task names one.
            entrypoint=options.entrypoint if options.entrypoint is not None else [""],
            env={**request.env, **options.env, "WORKING_DIR": workdir},
            working_dir=workdir,
            # Same path inside as outside, so paths rendered into the script work.
            binds=[f"{workdir}:{workdir}", *options.volumes],
            network_mode=options.network_mode,
            user=options.user,
            nano_cpus=int(options.cpus * 1e9) if options.cpus else None,
            memory=options.memory,
            labels=labels,
        )

    def run(self, request: RunRequest) -> RunResult:
        options = DockerOptions.from_options(request.options)
        request.workdir.mkdir(parents=True, exist_ok=True)
        engine = self.engine(options.host)
        engine.ensure_image(options.image, options.pull_policy)
        spec = self.container_spec(request, options)
        container_id = engine.create_container(spec, name=f"harrier-{uuid.uuid4().hex[:16]}")
        stop_reason: str | None = None
        finished = False
        pump: _LogPump | None = None
        try:
            pump = _LogPump(engine.attach_container(container_id), container_id, request)
            pump.start()
            engine.start_container(container_id)
            stop_reason = _wait_for(pump.done, request)
            if stop_reason is not None:
                engine.kill_container(container_id)
                exit_code = engine.wait_container(container_id)
                pump.done.wait(5.0)
            else:
                pump.raise_failure()
                exit_code = engine.wait_container(container_id)
                state = engine.inspect_container(container_id)
                if state.oom_killed:
                    raise DockerError(_oom_message(options, pump), retryable=False)
            finished = True
            return RunResult(exit_code=exit_code, outputs=pump.outputs,
                             stdout_tail=list(pump.stdout_tail),
                             stderr_tail=list(pump.stderr_tail),
                             timed_out=stop_reason == "timeout",
                             cancelled=stop_reason == "cancelled")
        finally:
            if options.delete or stop_reason is not None or not finished:
                engine.remove_container(container_id, force=True)
            if pump is not None:  # removing the container has ended its stream
                pump.join(10.0)


def _wait_for(done: threading.Event, request: RunRequest) -> str | None:
    """Wait until the container's log stream ends; "timeout" or "cancelled"
    if the run must be stopped first."""
    deadline = time.monotonic() + request.timeout if request.timeout is not None else None
    while not done.is_set():
        if request.cancel.is_set():
            return "cancelled"
        wait = _CANCEL_POLL_SECONDS
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return "timeout"
            wait = min(wait, remaining)
        done.wait(wait)
    return None


def _oom_message(options: DockerOptions, pump: _LogPump) -> str:
    limit = f"{options.memory / (1 << 20):g} MiB" if options.memory else "no set limit"
    lines = [*pump.stdout_tail, *pump.stderr_tail]
    tail = "\n".join(lines[-TAIL_LINES:]) or "(no output)"
    return (f"the container of image {options.image!r} was OOM-killed: it used more memory "
            f"than its limit ({limit}; taskRunner.memory.memory). Last lines:\n{tail}")


class _LogPump(threading.Thread):
    """Reads the container's log stream on its own thread: forwards each line
    to the request's sink, folds ::outputs:: lines and keeps the last lines."""

    def __init__(self, output: ContainerOutput, container_id: str, request: RunRequest) -> None:
        super().__init__(name=f"docker-logs-{container_id[:12]}", daemon=True)
        self._output = output
        self._request = request
        self.done = threading.Event()
        self.outputs: dict[str, Any] = {}
        self.stdout_tail: deque[str] = deque(maxlen=TAIL_LINES)
        self.stderr_tail: deque[str] = deque(maxlen=TAIL_LINES)
        self._failure: BaseException | None = None

    def run(self) -> None:
        try:
            for stream, line in self._output:
                message = parse_protocol_line(line)
                if message is not None:
                    merge_outputs(self.outputs, message)
                    continue
                (self.stdout_tail if stream == "stdout" else self.stderr_tail).append(line)
                self._request.on_line(stream, line)
        except BaseException as exc:  # handed to the runner's thread by raise_failure
            self._failure = exc
        finally:
            self.done.set()

    def raise_failure(self) -> None:
        if self._failure is not None:
            raise self._failure
