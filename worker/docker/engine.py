"""A small synchronous client for the Docker Engine API over httpx: images,
containers and their log streams, with every failure raised as a DockerError
that names the engine, the image or the container involved."""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

from harrier.common.errors import DockerError
from harrier.worker.docker.logstream import LogDemuxer


class PullPolicy(enum.StrEnum):
    IF_NOT_PRESENT = "IF_NOT_PRESENT"
    ALWAYS = "ALWAYS"
    NEVER = "NEVER"


@dataclass(frozen=True)
class ContainerSpec:
    """What a container is created with (a subset of the create API's body)."""

    image: str
    cmd: list[str]
    entrypoint: list[str] | None = None  # None keeps the image's; [""] clears it
    env: dict[str, str] = field(default_factory=dict)
    working_dir: str | None = None
    binds: list[str] = field(default_factory=list)  # "host:container[:ro]"
    network_mode: str | None = None
    user: str | None = None
    nano_cpus: int | None = None
    memory: int | None = None  # bytes; swap is disabled so the limit is the limit
    labels: dict[str, str] = field(default_factory=dict)
    tty: bool = False

    def to_api(self) -> dict[str, Any]:
        host_config: dict[str, Any] = {"Binds": list(self.binds)}
        if self.network_mode:
            host_config["NetworkMode"] = self.network_mode
        if self.nano_cpus:
            host_config["NanoCpus"] = self.nano_cpus
        if self.memory:
            host_config["Memory"] = self.memory
            host_config["MemorySwap"] = self.memory
        body: dict[str, Any] = {
            "Image": self.image,
            "Cmd": list(self.cmd),
            "Env": [f"{key}={value}" for key, value in self.env.items()],
            "Labels": dict(self.labels),
            "Tty": self.tty,
            "AttachStdout": True,
            "AttachStderr": True,
            "HostConfig": host_config,
        }
        if self.entrypoint is not None:
            body["Entrypoint"] = list(self.entrypoint)
        if self.working_dir:
            body["WorkingDir"] = self.working_dir
        if self.user:
            body["User"] = self.user
        return body


@dataclass(frozen=True)
class ContainerState:
    status: str  # created, running, exited, dead ...
    running: bool
    exit_code: int
    oom_killed: bool
    error: str


@dataclass(frozen=True)
class ContainerSummary:
    id: str
    name: str
    state: str
    created: int  # unix seconds
    labels: dict[str, str]


def split_image_reference(image: str) -> tuple[str, str]:
    """("repo", "tag or digest") as the pull API wants them; the tag defaults
    to latest. A registry port ("host:5000/app") is not a tag."""
    if "@" in image:
        name, digest = image.split("@", 1)
        return name, digest
    name, sep, tag = image.rpartition(":")
    if sep and "/" not in tag:
        return name, tag
    return image, "latest"


class DockerEngine:
    """One engine, addressed as DOCKER_HOST is: unix:///path, tcp://host:port
    (plain HTTP) or http(s)://host:port. Safe to share between threads."""

    def __init__(self, host: str, *, timeout: float = 60.0) -> None:
        self.host = host
        self._timeout = httpx.Timeout(timeout, connect=5.0)
        url = urlsplit(host)
        if url.scheme == "unix" or (not url.scheme and host.startswith("/")):
            self.socket_path: str | None = url.path if url.scheme else host
            transport = httpx.HTTPTransport(uds=self.socket_path)
            base_url = "http://docker"
        elif url.scheme in ("tcp", "http", "https"):
            self.socket_path = None
            transport = httpx.HTTPTransport()
            scheme = "https" if url.scheme == "https" else "http"
            base_url = f"{scheme}://{url.netloc}"
        else:
            raise DockerError(
                f"Docker host {host!r} is not supported: expected unix:///path/to/docker.sock "
                "or tcp://host:port", retryable=False)
        self._client = httpx.Client(transport=transport, base_url=base_url,
                                    timeout=self._timeout)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> DockerEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing ---------------------------------------------------------

    def _unreachable(self, exc: httpx.TransportError) -> DockerError:
        where = f"socket {self.socket_path}" if self.socket_path else self.host
        return DockerError(
            f"cannot reach the Docker engine at {where}: {exc or type(exc).__name__}; "
            "is dockerd running and is the address right (taskRunner.host or DOCKER_HOST)?")

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return self._client.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from exc

    @staticmethod
    def _message(response: httpx.Response) -> str:
        try:
            return str(response.json().get("message", response.text)).strip()
        except ValueError:
            return response.text.strip()

    def _check(self, response: httpx.Response, what: str, *, ok: Iterable[int] = ()) -> None:
        if response.is_success or response.status_code in ok:
            return
        raise DockerError(f"{what} failed: Docker engine answered {response.status_code}: "
                          f"{self._message(response)}")

    # -- engine and images -------------------------------------------------

    def ping(self) -> None:
        """Raises DockerError unless the engine answers."""
        self._check(self._request("GET", "/_ping"), f"ping of the Docker engine at {self.host}")

    def inspect_image(self, image: str) -> dict[str, Any] | None:
        response = self._request("GET", f"/images/{image}/json")
        if response.status_code == 404:
            return None
        self._check(response, f"inspecting image {image!r}")
        result: dict[str, Any] = response.json()
        return result

    def image_exists(self, image: str) -> bool:
        return self.inspect_image(image) is not None

    def pull_image(self, image: str) -> None:
        name, tag = split_image_reference(image)
        # The engine answers 200 and then reports failures inside the progress stream.
        try:
            with self._client.stream("POST", "/images/create",
                                     params={"fromImage": name, "tag": tag},
                                     timeout=httpx.Timeout(None, connect=5.0)) as response:
                if not response.is_success:
                    response.read()
                    raise DockerError(f"pulling image {image!r} failed: "
                                      f"{self._message(response)}")
                for line in response.iter_lines():
                    if not line.strip():
                        continue
                    try:
                        progress = json.loads(line)
                    except ValueError:
                        continue
                    if "error" in progress:
                        raise DockerError(f"pulling image {image!r} failed: "
                                          f"{str(progress['error']).strip()}")
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from exc

    def ensure_image(self, image: str, pull_policy: PullPolicy) -> None:
        """Make `image` present as `pull_policy` says, or say why it is not."""
        if pull_policy is PullPolicy.ALWAYS:
            try:
                self.pull_image(image)
            except DockerError as exc:
                raise DockerError(f"{exc} (pullPolicy ALWAYS)") from exc
            return
        if self.image_exists(image):
            return
        if pull_policy is PullPolicy.NEVER:
            raise DockerError(
                f"image {image!r} is not present on the Docker engine at {self.host} and "
                "pullPolicy is NEVER; load it there first or use pullPolicy IF_NOT_PRESENT",
                retryable=False)
        try:
            self.pull_image(image)
        except DockerError as exc:
            raise DockerError(f"image {image!r} is not present on the Docker engine at "
                              f"{self.host} (pullPolicy IF_NOT_PRESENT), and {exc}") from exc

    def import_image(self, tar: bytes | Iterable[bytes], reference: str) -> None:
        """Create an image from a root filesystem tarball (`docker import`)."""
        name, tag = split_image_reference(reference)
        response = self._request("POST", "/images/create",
                                 params={"fromSrc": "-", "repo": name, "tag": tag},
                                 headers={"Content-Type": "application/x-tar"}, content=tar)
        self._check(response, f"importing image {reference!r}")
        for line in response.text.splitlines():
            if line.strip() and "error" in (progress := json.loads(line)):
                raise DockerError(f"importing image {reference!r} failed: {progress['error']}")

    # -- containers ---------------------------------------------------------

    def create_container(self, spec: ContainerSpec, *, name: str | None = None) -> str:
        params = {"name": name} if name else {}
        response = self._request("POST", "/containers/create", params=params,
                                 json=spec.to_api())
        if response.status_code == 404:
            raise DockerError(f"image {spec.image!r} is not present on the Docker engine at "
                              f"{self.host}: {self._message(response)}", retryable=False)
        self._check(response, f"creating a container from image {spec.image!r}")
        container_id: str = response.json()["Id"]
        return container_id

    def start_container(self, container_id: str) -> None:
        response = self._request("POST", f"/containers/{container_id}/start")
        self._check(response, f"starting container {container_id[:12]}", ok=(304,))

    def container_logs(self, container_id: str, *, tty: bool = False,
                       follow: bool = True) -> Iterator[tuple[str, str]]:
        """(stream, line) for every line the container prints, as it prints it;
        with follow, ends when the container stops."""
        params = {"stdout": "1", "stderr": "1", "follow": "1" if follow else "0"}
        demuxer = LogDemuxer(tty=tty)
        try:
            with self._client.stream("GET", f"/containers/{container_id}/logs", params=params,
                                     timeout=httpx.Timeout(None, connect=5.0)) as response:
                if not response.is_success:
                    response.read()
                    self._check(response, f"reading the logs of container {container_id[:12]}")
                for chunk in response.iter_raw():
                    yield from demuxer.feed(chunk)
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from exc
        yield from demuxer.flush()

    def attach_container(self, container_id: str, *, tty: bool = False) -> ContainerOutput:
        """Attach to the container's stdout and stderr; call before starting
        it to see every line. Unlike following the logs, which can end before
        the last lines are written, an attached stream ends only after them."""
        request = self._client.build_request(
            "POST", f"/containers/{container_id}/attach",
            params={"stream": "1", "stdout": "1", "stderr": "1"},
            timeout=httpx.Timeout(None, connect=5.0))
        try:
            response = self._client.send(request, stream=True)
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from exc
        if not response.is_success:
            response.read()
            response.close()
            self._check(response, f"attaching to container {container_id[:12]}")
        return ContainerOutput(self, response, tty=tty)

    def wait_container(self, container_id: str) -> int:
        """Block until the container stops; its exit code."""
        response = self._request("POST", f"/containers/{container_id}/wait",
                                 params={"condition": "not-running"},
                                 timeout=httpx.Timeout(None, connect=5.0))
        self._check(response, f"waiting for container {container_id[:12]}")
        status: int = response.json()["StatusCode"]
        return status

    def container_details(self, container_id: str) -> dict[str, Any]:
        """The engine's whole inspect document (Config, HostConfig, State ...)."""
        response = self._request("GET", f"/containers/{container_id}/json")
        self._check(response, f"inspecting container {container_id[:12]}")
        details: dict[str, Any] = response.json()
        return details

    def inspect_container(self, container_id: str) -> ContainerState:
        state = self.container_details(container_id)["State"]
        return ContainerState(status=state.get("Status", ""), running=state.get("Running", False),
                              exit_code=state.get("ExitCode", -1),
                              oom_killed=state.get("OOMKilled", False),
                              error=state.get("Error", ""))

    def stop_container(self, container_id: str, *, grace_seconds: int = 10) -> None:
        """SIGTERM, then SIGKILL after the grace period; a stopped or gone
        container is fine."""
        response = self._request("POST", f"/containers/{container_id}/stop",
                                 params={"t": str(grace_seconds)},
                                 timeout=httpx.Timeout(grace_seconds + 30.0, connect=5.0))
        self._check(response, f"stopping container {container_id[:12]}", ok=(304, 404))

    def kill_container(self, container_id: str, *, signal: str = "KILL") -> None:
        response = self._request("POST", f"/containers/{container_id}/kill",
                                 params={"signal": signal})
        # 409: not running any more, which is what we wanted.
        self._check(response, f"killing container {container_id[:12]}", ok=(404, 409))

    def remove_container(self, container_id: str, *, force: bool = True) -> None:
        """Remove the container and its anonymous volumes; a gone one is fine."""
        response = self._request("DELETE", f"/containers/{container_id}",
                                 params={"force": "1" if force else "0", "v": "1"})
        if response.status_code == 409 and "in progress" in self._message(response):
            return
        self._check(response, f"removing container {container_id[:12]}", ok=(404,))

    def list_containers(self, labels: Mapping[str, str | None]) -> list[ContainerSummary]:
        """All containers, running or not, carrying every one of `labels`
        (a None value matches any value of that label)."""
        selectors = [key if value is None else f"{key}={value}" for key, value in labels.items()]
        response = self._request("GET", "/containers/json",
                                 params={"all": "1", "filters": json.dumps({"label": selectors})})
        self._check(response, "listing containers")
        return [ContainerSummary(id=item["Id"],
                                 name=(item.get("Names") or [""])[0].lstrip("/"),
                                 state=item.get("State", ""), created=item.get("Created", 0),
                                 labels=item.get("Labels") or {})
                for item in response.json()]


class ContainerOutput:
    """The attached output of one container: iterate for (stream, line) pairs
    as they are printed; the iteration ends when the container stops."""

    def __init__(self, engine: DockerEngine, response: httpx.Response, *, tty: bool) -> None:
        self._engine = engine
        self._response = response
        self._demuxer = LogDemuxer(tty=tty)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        try:
            # The engine hijacks the connection: a raw stream until it closes.
            for chunk in self._response.iter_raw():
                yield from self._demuxer.feed(chunk)
        except httpx.TransportError as exc:
            raise self._engine._unreachable(exc) from exc
        finally:
            self._response.close()
        yield from self._demuxer.flush()

    def close(self) -> None:
        self._response.close()
