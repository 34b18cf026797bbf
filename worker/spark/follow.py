"""Following a submitted cluster-mode driver to its end: state changes, its stdout/stderr
as they grow, its error line when it fails, and killing it when the execution is killed."""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable

from harrier.common.errors import SparkSubmissionError
from harrier.worker.spark.driver_logs import (
    LOG_TYPES,
    DriverLogReader,
    ErrorLineTracker,
    cluster_exception_line,
)
from harrier.worker.spark.rest import DriverStatus, SparkRestClient

log = logging.getLogger(__name__)

StateCallback = Callable[[DriverStatus], None]
# (stream, line) with stream "stdout" or "stderr": the same shape as runners.base.LineSink.
LogLineCallback = Callable[[str, str], None]


def follow_driver(client: SparkRestClient, submission_id: str, *,
                  on_state: StateCallback | None = None,
                  on_log_line: LogLineCallback | None = None,
                  cancel: threading.Event | None = None,
                  poll_interval: float = 1.0,
                  status_grace: float = 60.0,
                  kill_timeout: float = 30.0,
                  read_logs: bool = True) -> DriverStatus:
    """Poll the driver until FINISHED, FAILED, KILLED or ERROR and return its last status.

    - on_state(status) on every state change (the first poll included).
    - on_log_line(stream, line) for each line of the driver's stdout/stderr, read from its
      worker's web UI while it runs; log reading is best-effort and never fails the follow.
    - cancel set: kill the driver over REST and return its KILLED status.
    - FAILED/ERROR: the returned status' `message` is the driver's own error line when found.
    - The master unreachable for longer than status_grace seconds: SparkSubmissionError.
    """
    follower = _Follower(client, submission_id, on_state, on_log_line, read_logs)
    cancel = cancel or threading.Event()
    unreachable_since: float | None = None
    while True:
        if cancel.is_set():
            return follower.kill(kill_timeout, poll_interval)
        try:
            status = client.status(submission_id)
        except SparkSubmissionError:
            now = time.monotonic()
            unreachable_since = unreachable_since or now
            if now - unreachable_since > status_grace:
                raise
            log.warning("status of %s failed; retrying for up to %.0f s", submission_id,
                        status_grace, exc_info=True)
            cancel.wait(poll_interval)
            continue
        unreachable_since = None
        follower.observe(status)
        if status.is_terminal:
            return follower.finish(status)
        cancel.wait(poll_interval)


class _Follower:
    """The state one follow_driver call carries between polls."""

    def __init__(self, client: SparkRestClient, submission_id: str,
                 on_state: StateCallback | None, on_log_line: LogLineCallback | None,
                 read_logs: bool) -> None:
        self.client = client
        self.submission_id = submission_id
        self.on_state = on_state
        self.on_log_line = on_log_line
        self.read_logs = read_logs
        self.last_state: str | None = None
        self.logs: DriverLogReader | None = None
        self.logs_broken = False
        self.errors = ErrorLineTracker()

    def observe(self, status: DriverStatus, *, final: bool = False) -> None:
        if status.state != self.last_state:
            self.last_state = status.state
            if self.on_state is not None:
                self.on_state(status)
        self.pump_logs(status, final=final or status.is_terminal)

    def pump_logs(self, status: DriverStatus, *, final: bool) -> None:
        import httpx  # lazy: flows are parsed without paying for the HTTP client

        if not self.read_logs or self.logs_broken:
            return
        if self.logs is None:
            if not status.worker_id:
                return  # not placed on a worker yet
            url = self.client.worker_web_url(status)
            if url is None:
                return
            self.logs = DriverLogReader(self.client.http, url, self.submission_id)
        try:
            for log_type in LOG_TYPES:
                for line in self.logs.read_new_lines(log_type, final=final):
                    if log_type == "stderr":
                        self.errors.feed(line)
                    if self.on_log_line is not None:
                        self.on_log_line(log_type, line)
        except httpx.HTTPError as exc:
            # One warning, then stop trying: the task still follows the driver's state.
            self.logs_broken = True
            log.warning("cannot read the logs of %s from %s: %r", self.submission_id,
                        self.logs.worker_web_url, exc)

    def finish(self, status: DriverStatus) -> DriverStatus:
        if status.state not in ("FAILED", "ERROR"):
            return status
        line = (cluster_exception_line(status.message) if status.state == "ERROR" else None)
        line = line or self.errors.best() or cluster_exception_line(status.message)
        if line is None:
            line = f"driver {self.submission_id} ended {status.state} without an error line"
        return dataclasses.replace(status, message=line)

    def kill(self, kill_timeout: float, poll_interval: float) -> DriverStatus:
        try:
            self.client.kill(self.submission_id)
        except SparkSubmissionError:
            log.warning("kill of %s failed", self.submission_id, exc_info=True)
        deadline = time.monotonic() + kill_timeout
        last: DriverStatus | None = None
        while time.monotonic() < deadline:
            try:
                last = self.client.status(self.submission_id)
            except SparkSubmissionError:
                log.warning("status of %s after kill failed", self.submission_id, exc_info=True)
            else:
                self.observe(last)
                if last.is_terminal:
                    return self.finish(last)
            time.sleep(min(poll_interval, 0.5))
        killed = DriverStatus(
            submission_id=self.submission_id, state="KILLED",
            worker_id=last.worker_id if last else None,
            worker_host_port=last.worker_host_port if last else None,
            message=f"kill requested; the master did not confirm within {kill_timeout:.0f} s")
        if self.on_state is not None:
            self.on_state(killed)
        return killed
