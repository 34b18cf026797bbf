"""A client for Spark's standalone REST submission protocol (/v1/submissions/create, status,
kill) over httpx: submits a cluster-mode driver without starting a JVM."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

from harrier.common.errors import SparkSubmissionError

log = logging.getLogger(__name__)

DEFAULT_REST_PORT = 6066  # spark.master.rest.port's default
DEFAULT_MASTER_WEB_PORT = 8080
DEFAULT_WORKER_WEB_PORT = 8081
CLIENT_SPARK_VERSION = "3.5.5"

DRIVER_STATES = frozenset({"SUBMITTED", "RUNNING", "FINISHED", "FAILED", "KILLED", "ERROR",
                           "RELAUNCHING", "UNKNOWN"})
TERMINAL_STATES = frozenset({"FINISHED", "FAILED", "KILLED", "ERROR"})
MAX_SERVER_MESSAGE = 800


def rest_base_url(master: str) -> str:
    """spark://host:port -> http://host:port (the port defaults to 6066, Spark's REST port)."""
    parts = urlsplit(master.strip())
    if parts.scheme != "spark":
        raise SparkSubmissionError(
            f"master {master!r}: REST submission needs a standalone master URL like "
            f"spark://host:{DEFAULT_REST_PORT}, found scheme {parts.scheme or '(none)'!r}",
            retryable=False)
    if "," in parts.netloc:
        raise SparkSubmissionError(
            f"master {master!r}: REST submission takes one master, not a list "
            "(point it at the active master's REST port)", retryable=False)
    try:
        host, port = parts.hostname, parts.port
    except ValueError as exc:
        raise SparkSubmissionError(f"master {master!r}: {exc}", retryable=False) from exc
    if not host:
        raise SparkSubmissionError(f"master {master!r}: no host", retryable=False)
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    return f"http://{host}:{port or DEFAULT_REST_PORT}"


@dataclass
class SubmissionRequest:
    """The body of POST /v1/submissions/create (Spark's CreateSubmissionRequest)."""

    app_resource: str  # a URI every worker can read: file:/..., hdfs://..., https://...
    main_class: str
    app_args: list[str] = field(default_factory=list)
    spark_properties: dict[str, str] = field(default_factory=dict)
    environment_variables: dict[str, str] = field(default_factory=dict)
    client_spark_version: str = CLIENT_SPARK_VERSION

    def to_json(self) -> dict[str, Any]:
        return {
            "action": "CreateSubmissionRequest",
            "appResource": self.app_resource,
            "mainClass": self.main_class,
            "appArgs": list(self.app_args),
            "clientSparkVersion": self.client_spark_version,
            "environmentVariables": dict(self.environment_variables),
            "sparkProperties": dict(self.spark_properties),
        }


@dataclass(frozen=True)
class DriverStatus:
    """One answer of GET /v1/submissions/status/{id}. After follow_driver, `message` of a
    FAILED/ERROR driver is the driver's own error line when one was found."""

    submission_id: str
    state: str  # one of DRIVER_STATES
    worker_id: str | None = None
    worker_host_port: str | None = None
    message: str | None = None

    @property
    def is_terminal(self) -> bool:
        return self.state in TERMINAL_STATES

    @property
    def succeeded(self) -> bool:
        return self.state == "FINISHED"


class SparkRestClient:
    """Talks to one standalone master's REST server. Every call is bounded by the timeouts;
    every failure is a SparkSubmissionError naming the master."""

    def __init__(self, master: str, *, master_web_url: str | None = None,
                 connect_timeout: float = 3.0, read_timeout: float = 15.0) -> None:
        self.master = master
        self.base_url = rest_base_url(master)
        # The master's web UI (serves /json/ with the workers' web UI addresses); Spark's
        # default port on the REST host when not given.
        self.master_web_url = (master_web_url or self._default_web_url()).rstrip("/")
        import httpx  # lazy: flows are parsed without paying for the HTTP client

        self.http = httpx.Client(
            timeout=httpx.Timeout(read_timeout, connect=connect_timeout),
            follow_redirects=True)

    def _default_web_url(self) -> str:
        host = urlsplit(self.base_url).netloc.rsplit(":", 1)[0]
        return f"http://{host}:{DEFAULT_MASTER_WEB_PORT}"

    def __enter__(self) -> SparkRestClient:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    def create(self, request: SubmissionRequest) -> str:
        """Submit a driver; returns its submission id (driver-...). The driver is only
        SUBMITTED: follow it with status() or follow_driver()."""
        body = self._call("POST", "/v1/submissions/create", request.to_json())
        submission_id = body.get("submissionId")
        if not body.get("success") or not submission_id:
            raise SparkSubmissionError(
                f"Spark master at {self.master} refused the submission of "
                f"{request.main_class} ({request.app_resource}): "
                f"{_server_message(body.get('message'))}")
        return str(submission_id)

    def find(self, submission_id: str) -> DriverStatus | None:
        """The driver's status, or None when the master does not know that id."""
        body = self._call("GET", f"/v1/submissions/status/{submission_id}")
        if not body.get("success") and not body.get("driverState"):
            return None
        return DriverStatus(
            submission_id=submission_id,
            state=str(body.get("driverState") or "UNKNOWN"),
            worker_id=body.get("workerId"),
            worker_host_port=body.get("workerHostPort"),
            message=body.get("message"),
        )

    def status(self, submission_id: str) -> DriverStatus:
        found = self.find(submission_id)
        if found is None:
            raise SparkSubmissionError(
                f"Spark master at {self.master} knows no driver {submission_id} (a restarted "
                "master forgets its drivers unless spark.deploy.recoveryMode is set)")
        return found

    def kill(self, submission_id: str) -> bool:
        """Ask the master to kill the driver; False when it had already ended (or is unknown)."""
        body = self._call("POST", f"/v1/submissions/kill/{submission_id}")
        if not body.get("success"):
            log.info("kill %s on %s: %s", submission_id, self.master,
                     _server_message(body.get("message")))
            return False
        return True

    def worker_web_url(self, status: DriverStatus) -> str | None:
        """The web UI of the worker running the driver, from the master's /json/ (falling back
        to Spark's default worker UI port on the worker's host)."""
        import httpx  # lazy: see __init__

        if status.worker_id:
            try:
                workers = self.http.get(f"{self.master_web_url}/json/").json().get("workers", [])
                for worker in workers:
                    if worker.get("id") == status.worker_id and worker.get("webuiaddress"):
                        return str(worker["webuiaddress"]).rstrip("/")
            except (httpx.HTTPError, ValueError, AttributeError) as exc:
                log.info("cannot read workers from %s/json/: %r", self.master_web_url, exc)
        if status.worker_host_port:
            host = status.worker_host_port.rsplit(":", 1)[0]
            return f"http://{host}:{DEFAULT_WORKER_WEB_PORT}"
        return None

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None
              ) -> dict[str, Any]:
        import httpx  # lazy: see __init__

        url = self.base_url + path
        where = f"Spark master at {self.master} ({url})"
        try:
            response = self.http.request(method, url, json=body)
        except httpx.ConnectTimeout as exc:
            raise SparkSubmissionError(
                f"{where}: no connection within {self.http.timeout.connect} s; is the "
                "master's host reachable from this worker?") from exc
        except httpx.ConnectError as exc:
            raise SparkSubmissionError(
                f"{where}: cannot connect ({exc}); is the master running, with "
                "spark.master.rest.enabled=true, and is this its REST port "
                f"(spark.master.rest.port, default {DEFAULT_REST_PORT})?") from exc
        except httpx.RemoteProtocolError as exc:
            # Spark's RPC port reads the HTTP request as a frame length ("Too large frame")
            # and drops the connection.
            raise SparkSubmissionError(
                f"{where}: closed the connection without an HTTP answer; this looks like the "
                "master's legacy RPC port (default 7077), not its REST submission port. "
                "Start the master with spark.master.rest.enabled=true and use "
                f"spark://host:<spark.master.rest.port> (default {DEFAULT_REST_PORT}).") from exc
        except httpx.TimeoutException as exc:
            raise SparkSubmissionError(
                f"{where}: no answer within {self.http.timeout.read} s") from exc
        except httpx.HTTPError as exc:
            raise SparkSubmissionError(f"{where}: {exc!r}") from exc
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if not isinstance(answer, dict) or "action" not in answer:
            kind = response.headers.get("content-type", "no content type")
            raise SparkSubmissionError(
                f"{where}: answered HTTP {response.status_code} ({kind}), not the Spark REST "
                "submission protocol; is this the master's REST port (spark.master.rest.port, "
                f"default {DEFAULT_REST_PORT}) rather than its web UI?")
        if answer.get("action") == "ErrorResponse" or response.status_code >= 400:
            raise SparkSubmissionError(
                f"{where}: HTTP {response.status_code}: "
                f"{_server_message(answer.get('message'))}")
        return answer


def _server_message(message: object) -> str:
    """The server's message without its Java stack frames, bounded in length."""
    if not message:
        return "(no message)"
    lines = [line for line in str(message).splitlines()
             if line.strip() and not line.startswith("\t")]
    text = " ".join(lines)
    if len(text) > MAX_SERVER_MESSAGE:
        text = text[:MAX_SERVER_MESSAGE] + "..."
    return text
