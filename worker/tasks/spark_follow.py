"""What SparkCLI, JarSubmit and PythonSubmit share once a cluster-mode driver exists: the
checkpoint that lets a redelivered attempt re-attach, following the driver into the task's
logs, and turning its end state into outputs, a failure, a kill or a timeout."""

from __future__ import annotations

import dataclasses
import re
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any

from harrier.common.errors import SparkSubmissionError, TaskFailed, TaskKilled, TaskTimeout
from harrier.common.metrics import recorder
from harrier.worker.context import TaskContext
from harrier.worker.spark.driver_logs import ErrorLineTracker
from harrier.worker.spark.follow import follow_driver
from harrier.worker.spark.rest import DriverStatus, SparkRestClient
from harrier.worker.spark.submit_output import SubmitOutputScanner, legacy_mismatch_message

if TYPE_CHECKING:
    from harrier.worker.tasks.script import ScriptTask

# RestSubmissionClient: "Submitting a request to launch an application in spark://h:p."
REST_MASTER_LINE = re.compile(r"launch an application in (spark://[^\s,]+?)\.?$")
# o.a.s.deploy.Client, the legacy gateway: no REST status API to follow the driver with.
LEGACY_GATEWAY = "Driver successfully submitted as"
POLL_INTERVAL = 1.0  # seconds between status polls of a driver
CANCEL_POLL = 0.1


@dataclass(frozen=True)
class Submission:
    """A driver this task run submitted: what a later attempt needs to find it again."""

    submission_id: str
    master: str  # spark://host:port of the master's REST server
    master_web_url: str | None = None  # its web UI, for the driver's live logs

    def to_checkpoint(self) -> dict[str, Any]:
        return {"submissionId": self.submission_id, "master": self.master,
                "masterWebUrl": self.master_web_url}

    @classmethod
    def from_checkpoint(cls, data: dict[str, Any]) -> Submission | None:
        if not data.get("submissionId") or not data.get("master"):
            return None
        return cls(str(data["submissionId"]), str(data["master"]),
                   data.get("masterWebUrl") or None)

    def client(self) -> SparkRestClient:
        return SparkRestClient(self.master, master_web_url=self.master_web_url)


class CancelScope:
    """An Event set when the execution is killed (ctx.cancel), when `timeout` seconds pass,
    or when the task trips it itself; `reason` says which came first."""

    def __init__(self, parent: threading.Event, timeout: float | None = None) -> None:
        self.event = threading.Event()
        self.reason: str | None = None
        self._parent = parent
        self._deadline = None if timeout is None else time.monotonic() + timeout
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._watch, daemon=True, name="cancel-scope")

    def trip(self, reason: str) -> None:
        with self._lock:
            if self.reason is None:
                self.reason = reason
        self.event.set()

    def __enter__(self) -> CancelScope:
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._done.set()
        self._thread.join(timeout=1.0)

    def _watch(self) -> None:
        while not self._done.is_set():
            if self._parent.wait(CANCEL_POLL):
                self.trip("killed")
                return
            if self._deadline is not None and time.monotonic() >= self._deadline:
                self.trip("timeout")
                return


def remaining_timeout(timeout: timedelta | None, started: float) -> float | None:
    """Seconds left of the task's `timeout` (a timedelta or None) since `started`."""
    if timeout is None:
        return None
    return max(0.0, timeout.total_seconds() - (time.monotonic() - started))


def reattach(ctx: TaskContext) -> Submission | None:
    """The driver a lost attempt of this task run had submitted, if the master still knows
    it; None means submit anew. An unreachable master fails the attempt (retryable) rather
    than risk a second driver."""
    submission = Submission.from_checkpoint(ctx.previous_checkpoint)
    if submission is None:
        return None
    with submission.client() as client:
        found = client.find(submission.submission_id)
    if found is None:
        ctx.log("WARN", f"driver {submission.submission_id} of a previous attempt is unknown "
                f"to {submission.master}; submitting again")
        return None
    ctx.log("INFO", f"re-attaching to driver {submission.submission_id} submitted by a "
            f"previous attempt (now {found.state})")
    ctx.checkpoint(submission.to_checkpoint())
    return submission


def follow_submission(ctx: TaskContext, submission: Submission, *,
                      timeout: float | None = None,
                      poll_interval: float = POLL_INTERVAL) -> dict[str, Any]:
    """Follow the driver to its end with its stdout/stderr in the task's logs. Returns the
    driver outputs on FINISHED; raises SparkSubmissionError (retryable) on FAILED, ERROR or a
    KILLED we did not ask for, TaskKilled when the execution was killed (the driver is
    killed too) and TaskTimeout past `timeout` seconds (likewise)."""
    submission_id = submission.submission_id

    def on_state(status: DriverStatus) -> None:
        where = f" on {status.worker_id}" if status.worker_id else ""
        ctx.log("INFO", f"driver {submission_id} {status.state}{where}")

    def on_log_line(stream: str, line: str) -> None:
        ctx.log("INFO", f"[driver {stream}] {line}")

    with CancelScope(ctx.cancel, timeout) as scope, submission.client() as client:
        status = follow_driver(client, submission_id, on_state=on_state,
                               on_log_line=on_log_line, cancel=scope.event,
                               poll_interval=poll_interval)
    recorder().spark_driver_ended(status.state)
    if status.succeeded:
        return driver_outputs(status)
    if status.state == "KILLED" and scope.reason == "killed":
        raise TaskKilled(f"killed; driver {submission_id} killed")
    if status.state == "KILLED" and scope.reason == "timeout":
        raise TaskTimeout(f"timed out; driver {submission_id} killed")
    raise SparkSubmissionError(f"driver {submission_id} {status.state}: "
                               f"{status.message or '(no message from the master)'}")


def driver_outputs(status: DriverStatus) -> dict[str, Any]:
    return {"submissionId": status.submission_id, "driverState": status.state,
            "workerId": status.worker_id}


def submitted_outputs(submission: Submission) -> dict[str, Any]:
    """Outputs of a fire-and-forget submission (waitForCompletion: false)."""
    return {"submissionId": submission.submission_id, "driverState": "SUBMITTED",
            "workerId": None}


def kill_quietly(ctx: TaskContext, submission: Submission) -> None:
    """Best-effort kill of a driver whose submitting attempt is being abandoned."""
    try:
        with submission.client() as client:
            client.kill(submission.submission_id)
    except SparkSubmissionError as exc:
        ctx.log("WARN", f"could not kill driver {submission.submission_id}: {exc}")


def submit_and_follow(task: ScriptTask, ctx: TaskContext, *, master: str | None,
                      master_web_url: str | None, wait: bool) -> dict[str, Any]:
    """Run the task's spark-submit script through its task runner and, when it printed a
    cluster-mode submission id, follow that driver (wait) or return right away (not wait).
    A lost attempt's driver is re-attached to instead of running spark-submit again."""
    started = time.monotonic()
    if wait:
        resumed = reattach(ctx)
        if resumed is not None:
            outputs = follow_submission(ctx, resumed,
                                        timeout=remaining_timeout(task.timeout, started))
            return {"vars": {}, "exitCode": 0, **outputs}
    watch = SubmitWatch(ctx, master, master_web_url, checkpoint=wait)
    with CancelScope(ctx.cancel) as scope:
        watch.scope = scope
        try:
            result = task.run_script(dataclasses.replace(ctx, cancel=scope.event),
                                     on_line=watch.feed)
        except TaskTimeout:
            raise
        except TaskKilled:
            if scope.reason == "legacy":
                raise SparkSubmissionError(legacy_mismatch_message(watch.master or "?"),
                                           retryable=False) from None
            if watch.submission is not None:
                kill_quietly(ctx, watch.submission)  # submitted just before the kill
            raise
        except TaskFailed as exc:
            reason = watch.errors.best()
            if reason is None:
                raise
            where = f" (master {watch.master})" if watch.master else ""
            raise SparkSubmissionError(f"spark-submit exited with code {exc.exit_code}: "
                                       f"{reason}{where}", exit_code=exc.exit_code) from exc
    outputs = task.outputs_of(ctx, result)
    if watch.submission_id is not None:  # cluster mode: spark-submit only submitted
        recorder().spark_submitted("cli", time.monotonic() - started)
    submission = watch.submission
    if submission is None:
        if watch.submission_id is not None:
            ctx.log("WARN", f"driver {watch.submission_id} was submitted "
                    f"{watch.unfollowable_reason()}; not following it")
            outputs.update({"submissionId": watch.submission_id, "driverState": "SUBMITTED",
                            "workerId": None})
        return outputs
    if not wait:
        return {**outputs, **submitted_outputs(submission)}
    outputs.update(follow_submission(ctx, submission,
                                     timeout=remaining_timeout(task.timeout, started)))
    return outputs


class SubmitWatch:
    """Reads spark-submit's lines as they arrive: the submission id (checkpointed at once, so
    a worker dying from then on leaves a driver the next attempt can find), the REST master
    it went to, and the legacy-protocol hang signature (which trips the cancel scope)."""

    def __init__(self, ctx: TaskContext, master: str | None, master_web_url: str | None, *,
                 checkpoint: bool) -> None:
        self.ctx = ctx
        self.scanner = SubmitOutputScanner()
        self.errors = ErrorLineTracker()
        self.master = master
        self.master_web_url = master_web_url
        self.checkpoint = checkpoint
        self.legacy_gateway = False
        self.submission: Submission | None = None
        self.scope: CancelScope | None = None
        self.lock = threading.Lock()

    @property
    def submission_id(self) -> str | None:
        return self.scanner.submission_id

    def feed(self, stream: str, line: str) -> None:
        with self.lock:
            if match := REST_MASTER_LINE.search(line):
                self.master = match.group(1)  # what spark-submit really used
            if LEGACY_GATEWAY in line and self.submission_id is None:
                self.legacy_gateway = True
            had_id = self.submission_id is not None
            self.errors.feed(line)
            self.scanner.feed(line)
            if self.scanner.legacy_protocol_mismatch and self.scope is not None:
                self.scope.trip("legacy")
            submission_id = self.submission_id
            if had_id or submission_id is None or self.master is None or self.legacy_gateway:
                return
            self.submission = Submission(submission_id, self.master, self.master_web_url)
            if self.checkpoint:
                self.ctx.checkpoint(self.submission.to_checkpoint())

    def unfollowable_reason(self) -> str:
        if self.legacy_gateway:
            return "through the master's legacy gateway, which has no status API"
        return "to a master Harrier could not find in the commands (--master spark://...)"
